using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

// DSD (weight-value, "nn"):    C[n, block row i, h]    = sum over b = (i, j) of W[n,h,b]   . X[n, rows of block j, h]
// DSD transposed ("tn"):       C[n, block column j, h] = sum over b = (i, j) of W[n,h,b]^T . X[n, rows of block i, h]
// Versions:
//   v1  16x16 output tile per 256-thread group, walking the row (nn) or column (tn) LUT, 16-deep shared staging, fp32 FMA.
//       Blocks are summed in LUT order, so results are deterministic. A block row with no blocks writes zeros. fp32 path.
//   v2  fp16/bf16: tensor cores (mma.sync m16n8k16) in DsdKernels.TensorCore.cs; one warp per 16x16 output tile,
//       fragments gathered from global memory; same LUT order, so still deterministic.
//   v3  fp16/bf16: one group per 64 output rows (or a smaller block's rows), a warp per 16 rows x 16 features; each
//       block's weight tile and dense rows staged in shared memory with 16-byte loads, fragments read from there
//       (ldmatrix, .trans for the ones that run across rows). Same LUT order. Each thread's staging offsets are computed
//       once; the next slice's quads load into registers while the warps compute (v17 in docs/benchmarks.md).

/// <summary>Arguments of the SIMT (fp32 FMA) DSD kernel.</summary>
/// <typeparam name="T">Storage type of the dense operand and result.</typeparam>
/// <typeparam name="TWeight">Storage type of the weights: <typeparamref name="T"/>, or bf16 bits for fp32 inputs.</typeparam>
public readonly struct DsdFmaParams<T, TWeight>
    where T : unmanaged
    where TWeight : unmanaged
{
    /// <summary>Block-sparse weights <c>[batch, heads, blocks, block, block]</c>.</summary>
    public ArrayView<TWeight> Weights { get; init; }

    /// <summary>Dense operand <c>[batch, ctx, heads * headDim]</c>.</summary>
    public ArrayView<T> Dense { get; init; }

    /// <summary>Dense result, same shape as <see cref="Dense"/>; every element is written.</summary>
    public ArrayView<T> Output { get; init; }

    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }

    /// <summary>1 for the transposed op (walk columns, use W transposed), 0 for the plain one.</summary>
    public int Transposed { get; init; }
}

/// <summary>The DSD kernel family and its launcher.</summary>
public static partial class DsdKernels
{
    private const int Tile = SddKernels.Tile;

    /// <summary>Computes the plain (<c>nn</c>) or transposed (<c>tn</c>) block-sparse times dense product with fp32 FMA.</summary>
    /// <typeparam name="T">Storage type of the dense operand and result.</typeparam>
    /// <typeparam name="TElement">Conversion of <typeparamref name="T"/>.</typeparam>
    /// <typeparam name="TWeight">Storage type of the weights.</typeparam>
    /// <typeparam name="TWeightElement">Conversion of <typeparamref name="TWeight"/>.</typeparam>
    public static void Launch<T, TElement, TWeight, TWeightElement>(Accelerator accelerator, in DsdFmaParams<T, TWeight> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
        where TWeight : unmanaged
        where TWeightElement : struct, IElement<TWeight>
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var groups = new Index2D(p.Dims.Ctx / Tile * (p.Dims.HeadDim / Tile), p.Dims.Batch * p.Dims.Heads);
        KernelLoader.Get<DsdFmaParams<T, TWeight>>(accelerator, Kernel<T, TElement, TWeight, TWeightElement>)(accelerator.DefaultStream, new KernelConfig(groups, new Index2D(Tile * Tile, 1)), p);
    }

    internal static void Kernel<T, TElement, TWeight, TWeightElement>(DsdFmaParams<T, TWeight> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
        where TWeight : unmanaged
        where TWeightElement : struct, IElement<TWeight>
    {
        var element = default(TElement);
        var dims = p.Dims;
        var plan = p.Plan;
        var bs = plan.BlockSize;
        int n = Grid.IdxY / dims.Heads, h = Grid.IdxY % dims.Heads, lh = plan.LayoutHead(h);
        var featureTiles = dims.HeadDim / Tile;
        int rowTile = Grid.IdxX / featureTiles, d0 = Grid.IdxX % featureTiles * Tile;
        int outBlock = rowTile * Tile / bs, rowInBlock = rowTile * Tile % bs;
        int ty = Group.IdxX / Tile, tx = Group.IdxX % Tile;
        var transposed = p.Transposed != 0;
        var offsets = transposed ? plan.ColumnOffsets : plan.RowOffsets;
        var entries = transposed ? plan.ColumnBlocks : plan.RowBlocks;
        var start = offsets[lh * (plan.BlockCount + 1) + outBlock];
        var end = offsets[lh * (plan.BlockCount + 1) + outBlock + 1];

        var weightTile = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        var denseTile = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        var acc = 0f;
        for (var entry = start; entry < end; entry++)
        {
            var block = entries[entry];
            var other = transposed ? plan.BlockRows[lh * plan.BlocksPerHead + block] : plan.BlockColumns[lh * plan.BlocksPerHead + block];
            var blockBase = (((long)n * dims.Heads + h) * plan.BlocksPerHead + block) * bs * bs;
            for (var k0 = 0; k0 < bs; k0 += Tile)
            {
                // Plain: tile[r][k] = W[row r][col k0+k]. Transposed: tile[k][r] = W[row k0+k][col r], read coalesced along r.
                var weightIndex = transposed
                    ? blockBase + (k0 + ty) * bs + rowInBlock + tx
                    : blockBase + (rowInBlock + ty) * bs + k0 + tx;
                weightTile[ty * (Tile + 1) + tx] = default(TWeightElement).ToFloat(p.Weights[weightIndex]);
                denseTile[ty * (Tile + 1) + tx] = element.ToFloat(p.Dense[dims.Index(n, other * bs + k0 + ty, h, d0 + tx)]);
                Group.Barrier();
                for (var e = 0; e < Tile; e++)
                {
                    var w = transposed ? weightTile[e * (Tile + 1) + ty] : weightTile[ty * (Tile + 1) + e];
                    acc += w * denseTile[e * (Tile + 1) + tx];
                }

                Group.Barrier();
            }
        }

        p.Output[dims.Index(n, rowTile * Tile + ty, h, d0 + tx)] = element.FromFloat(acc);
    }
}
