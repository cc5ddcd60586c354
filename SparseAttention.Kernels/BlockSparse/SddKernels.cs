using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

// SDD (query-key, "nt"): W[n,h,b] = A[n, rows of block i, h] . B[n, rows of block j, h]^T for every enabled block b = (i, j).
// Versions:
//   v1  16x16 output tile per 256-thread group, head dim staged through shared memory 16 at a time, fp32 FMA.
//       Plain C#, so the CPU accelerator runs the very same code. Still the fp32 path, optionally storing bf16 weights.
//   v2  fp16/bf16: tensor cores (mma.sync m16n8k16, fp32 accumulate) in SddKernels.TensorCore.cs; one warp per 16x16
//       output tile, fragments loaded straight from global memory as packed pairs; no shared memory, no barriers.
//   v3  fp16/bf16: one group per 64x64 tile (or the whole smaller block), both operands staged in shared memory with
//       16-byte loads and read by the warps from there (ldmatrix), the result leaving through shared memory as 16-byte
//       stores; about one wave of groups, each taking a run of tiles and staging the query rows once per block row.

/// <summary>Arguments of the SIMT (fp32 FMA) SDD kernel.</summary>
/// <typeparam name="T">Storage type of the inputs.</typeparam>
/// <typeparam name="TWeight">Storage type of the block-sparse output: <typeparamref name="T"/>, or bf16 bits for fp32 inputs.</typeparam>
public readonly struct SddFmaParams<T, TWeight>
    where T : unmanaged
    where TWeight : unmanaged
{
    /// <summary>Left operand, <c>[batch, ctx, heads * headDim]</c> (queries, or output gradients).</summary>
    public ArrayView<T> Left { get; init; }

    /// <summary>Right operand, same shape (keys, or values).</summary>
    public ArrayView<T> Right { get; init; }

    /// <summary>Block-sparse result <c>[batch, heads, blocks, block, block]</c>.</summary>
    public ArrayView<TWeight> Output { get; init; }

    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }
}

/// <summary>The SDD kernel family and its launcher.</summary>
public static partial class SddKernels
{
    /// <summary>Tile edge: every supported block size and head dim is a multiple of it.</summary>
    public const int Tile = 16;

    /// <summary>Computes every enabled block of <c>Left . Right^T</c> into <c>Output</c> with fp32 FMA.</summary>
    /// <typeparam name="T">Storage type of the inputs.</typeparam>
    /// <typeparam name="TElement">Conversion of <typeparamref name="T"/>.</typeparam>
    /// <typeparam name="TWeight">Storage type of the output.</typeparam>
    /// <typeparam name="TWeightElement">Conversion of <typeparamref name="TWeight"/>.</typeparam>
    public static void Launch<T, TElement, TWeight, TWeightElement>(Accelerator accelerator, in SddFmaParams<T, TWeight> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
        where TWeight : unmanaged
        where TWeightElement : struct, IElement<TWeight>
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var tilesPerBlock = p.Plan.BlockSize / Tile;
        var groups = new Index2D(p.Plan.BlocksPerHead * tilesPerBlock * tilesPerBlock, p.Dims.Batch * p.Dims.Heads);
        if (groups.X == 0)
        {
            return;
        }

        KernelLoader.Get<SddFmaParams<T, TWeight>>(accelerator, Kernel<T, TElement, TWeight, TWeightElement>)(accelerator.DefaultStream, new KernelConfig(groups, new Index2D(Tile * Tile, 1)), p);
    }

    internal static void Kernel<T, TElement, TWeight, TWeightElement>(SddFmaParams<T, TWeight> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
        where TWeight : unmanaged
        where TWeightElement : struct, IElement<TWeight>
    {
        var element = default(TElement);
        var dims = p.Dims;
        var plan = p.Plan;
        int bs = plan.BlockSize, tilesPerBlock = bs / Tile;
        int n = Grid.IdxY / dims.Heads, h = Grid.IdxY % dims.Heads, lh = plan.LayoutHead(h);
        var block = Grid.IdxX / (tilesPerBlock * tilesPerBlock);
        var tileInBlock = Grid.IdxX % (tilesPerBlock * tilesPerBlock);
        int tileRow = tileInBlock / tilesPerBlock, tileColumn = tileInBlock % tilesPerBlock;
        int ty = Group.IdxX / Tile, tx = Group.IdxX % Tile;
        var leftRow = plan.BlockRows[lh * plan.BlocksPerHead + block] * bs + tileRow * Tile;
        var rightRow = plan.BlockColumns[lh * plan.BlocksPerHead + block] * bs + tileColumn * Tile;

        // One padding column keeps the transposed read of the right tile free of bank conflicts.
        var leftTile = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        var rightTile = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        var acc = 0f;
        for (var d0 = 0; d0 < dims.HeadDim; d0 += Tile)
        {
            leftTile[ty * (Tile + 1) + tx] = element.ToFloat(p.Left[dims.Index(n, leftRow + ty, h, d0 + tx)]);
            rightTile[ty * (Tile + 1) + tx] = element.ToFloat(p.Right[dims.Index(n, rightRow + ty, h, d0 + tx)]);
            Group.Barrier();
            for (var e = 0; e < Tile; e++)
            {
                acc += leftTile[ty * (Tile + 1) + e] * rightTile[tx * (Tile + 1) + e];
            }

            Group.Barrier();
        }

        var output = (((long)n * dims.Heads + h) * plan.BlocksPerHead + block) * bs * bs + (tileRow * Tile + ty) * bs + tileColumn * Tile + tx;
        p.Output[output] = default(TWeightElement).FromFloat(acc);
    }
}
