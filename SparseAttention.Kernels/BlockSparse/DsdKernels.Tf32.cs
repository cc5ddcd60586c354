using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

/// <summary>Arguments of the TF32 DSD kernel (fp32 weights, operand and result).</summary>
public readonly struct DsdTf32Params
{
    /// <summary>Block-sparse weights <c>[batch, heads, blocks, block, block]</c>.</summary>
    public ArrayView<float> Weights { get; init; }

    /// <summary>Dense operand <c>[batch, ctx, heads * headDim]</c>.</summary>
    public ArrayView<float> Dense { get; init; }

    /// <summary>Dense result, same shape as <see cref="Dense"/>; every element is written.</summary>
    public ArrayView<float> Output { get; init; }

    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }

    /// <summary>1 for the transposed op (walk columns, use W transposed), 0 for the plain one.</summary>
    public int Transposed { get; init; }
}

/// <summary>DSD v2-tf32: the fp32 opt-in on TF32 tensor cores, one warp per 16x16 output tile.</summary>
public static partial class DsdKernels
{
    /// <summary>The plain or transposed product with TF32 mma.sync (truncating C# twin on the CPU).</summary>
    public static void LaunchTf32(Accelerator accelerator, in DsdTf32Params p)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var warpTiles = DsdWarpTile.Count(p.Dims);
        KernelLoader.Get<DsdTf32Params>(accelerator, Tf32Kernel)(accelerator.DefaultStream, TensorCore.Config(warpTiles, p.Dims), p);
    }

    internal static void Tf32Kernel(DsdTf32Params p)
    {
        var dims = p.Dims;
        var plan = p.Plan;
        var bs = plan.BlockSize;
        var transposed = p.Transposed != 0;
        var tile = new DsdWarpTile(plan, dims, transposed);
        if (!tile.IsActive)
        {
            return;
        }

        int g = tile.G, t = tile.T;
        var tokenStep = tile.TokenStep;

        // A[m][k] = W[m][k] (plain) or W[k][m] (transposed), m the output row, k the token of the other block.
        long aRowStep = tile.ARowStep, aColumnStep = tile.AColumnStep;
        Ref<float> c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u, b0 = 0u, b1 = 0u;
        for (var entry = tile.Start; entry < tile.End; entry++)
        {
            var block = tile.Block(entry);
            var aRow = tile.WeightIndex(block);
            var denseFirst = tile.DenseIndex(block, t, tile.D0 + g);
            var columnFirst = tile.DenseIndex(block, 0, tile.D0 + 2 * t);
            for (var kk = 0; kk < bs; kk += 8)
            {
                if (CudaAsm.IsSupported)
                {
                    // A[m][k]: rows g, g+8 and columns t, t+4 of this 16x8 step.
                    var a = aRow + (kk + t) * aColumnStep;
                    a0 = Tf32.Bits(p.Weights[a]);
                    a1 = Tf32.Bits(p.Weights[a + 8 * aRowStep]);
                    a2 = Tf32.Bits(p.Weights[a + 4 * aColumnStep]);
                    a3 = Tf32.Bits(p.Weights[a + 8 * aRowStep + 4 * aColumnStep]);
                    var dense = denseFirst + kk * tokenStep;
                    b0 = Tf32.Bits(p.Dense[dense]);
                    b1 = Tf32.Bits(p.Dense[dense + 4 * tokenStep]);
                    Tf32.Mma(ref c00, ref c01, ref c02, ref c03, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                    b0 = Tf32.Bits(p.Dense[dense + 8]);
                    b1 = Tf32.Bits(p.Dense[dense + 4 * tokenStep + 8]);
                    Tf32.Mma(ref c10, ref c11, ref c12, ref c13, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                }
                else
                {
                    var rowG = aRow + kk * aColumnStep;
                    var rowG8 = rowG + 8 * aRowStep;
                    var column = columnFirst + kk * tokenStep;
                    c00.Value += Tf32.Dot8(p.Weights, rowG, aColumnStep, p.Dense, column, tokenStep);
                    c01.Value += Tf32.Dot8(p.Weights, rowG, aColumnStep, p.Dense, column + 1, tokenStep);
                    c02.Value += Tf32.Dot8(p.Weights, rowG8, aColumnStep, p.Dense, column, tokenStep);
                    c03.Value += Tf32.Dot8(p.Weights, rowG8, aColumnStep, p.Dense, column + 1, tokenStep);
                    c10.Value += Tf32.Dot8(p.Weights, rowG, aColumnStep, p.Dense, column + 8, tokenStep);
                    c11.Value += Tf32.Dot8(p.Weights, rowG, aColumnStep, p.Dense, column + 9, tokenStep);
                    c12.Value += Tf32.Dot8(p.Weights, rowG8, aColumnStep, p.Dense, column + 8, tokenStep);
                    c13.Value += Tf32.Dot8(p.Weights, rowG8, aColumnStep, p.Dense, column + 9, tokenStep);
                }
            }
        }

        Tf32.Store(p.Output, tile.OutputIndex, 8 * tokenStep, c00, c01, c02, c03, c10, c11, c12, c13);
    }
}
