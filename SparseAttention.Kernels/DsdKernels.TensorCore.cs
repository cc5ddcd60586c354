using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels;

/// <summary>DSD v2: tensor cores for fp16 and bf16.</summary>
public static partial class DsdKernels
{
    /// <summary>The plain or transposed block-sparse times dense product with mma.sync (plain C# twin on the CPU).</summary>
    public static void LaunchTensorCore<TElement>(Accelerator accelerator, in DsdParams<ushort> p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var warpTiles = DsdWarpTile.Count(p.Dims);
        KernelCache.Get<DsdParams<ushort>>(accelerator, TensorCoreKernel<TElement>)(accelerator.DefaultStream, TensorCore.Config(warpTiles, p.Dims), p);
    }

    internal static void TensorCoreKernel<TElement>(DsdParams<ushort> p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var element = default(TElement);
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
            var aFirst = aRow + 2 * t * aColumnStep;
            var denseFirst = tile.DenseIndex(block, 2 * t, tile.D0 + g);
            var columnFirst = tile.DenseIndex(block, 0, tile.D0 + 2 * t);
            for (var kk = 0; kk < bs; kk += 16)
            {
                var a = aFirst + kk * aColumnStep;
                var dense = denseFirst + kk * tokenStep;
                if (CudaAsm.IsSupported)
                {
                    if (transposed)
                    {
                        a0 = TensorCore.Pack(p.Weights[a], p.Weights[a + bs]);
                        a1 = TensorCore.Pack(p.Weights[a + 8], p.Weights[a + 8 + bs]);
                        a2 = TensorCore.Pack(p.Weights[a + 8 * bs], p.Weights[a + 9 * bs]);
                        a3 = TensorCore.Pack(p.Weights[a + 8 + 8 * bs], p.Weights[a + 8 + 9 * bs]);
                    }
                    else
                    {
                        a0 = p.WeightPairs[a >> 1];
                        a1 = p.WeightPairs[(a + 8 * bs) >> 1];
                        a2 = p.WeightPairs[(a + 8) >> 1];
                        a3 = p.WeightPairs[(a + 8 * bs + 8) >> 1];
                    }

                    var eightTokens = 8 * tokenStep;
                    b0 = TensorCore.Pack(p.Dense[dense], p.Dense[dense + tokenStep]);
                    b1 = TensorCore.Pack(p.Dense[dense + eightTokens], p.Dense[dense + eightTokens + tokenStep]);
                    element.Mma(ref c00, ref c01, ref c02, ref c03, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                    b0 = TensorCore.Pack(p.Dense[dense + 8], p.Dense[dense + tokenStep + 8]);
                    b1 = TensorCore.Pack(p.Dense[dense + eightTokens + 8], p.Dense[dense + eightTokens + tokenStep + 8]);
                    element.Mma(ref c10, ref c11, ref c12, ref c13, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                }
                else
                {
                    var rowG = aRow + kk * aColumnStep;
                    var rowG8 = rowG + 8 * aRowStep;
                    var column = columnFirst + kk * tokenStep;
                    c00.Value += TensorCore.Dot16(element, p.Weights, rowG, aColumnStep, p.Dense, column, tokenStep);
                    c01.Value += TensorCore.Dot16(element, p.Weights, rowG, aColumnStep, p.Dense, column + 1, tokenStep);
                    c02.Value += TensorCore.Dot16(element, p.Weights, rowG8, aColumnStep, p.Dense, column, tokenStep);
                    c03.Value += TensorCore.Dot16(element, p.Weights, rowG8, aColumnStep, p.Dense, column + 1, tokenStep);
                    c10.Value += TensorCore.Dot16(element, p.Weights, rowG, aColumnStep, p.Dense, column + 8, tokenStep);
                    c11.Value += TensorCore.Dot16(element, p.Weights, rowG, aColumnStep, p.Dense, column + 9, tokenStep);
                    c12.Value += TensorCore.Dot16(element, p.Weights, rowG8, aColumnStep, p.Dense, column + 8, tokenStep);
                    c13.Value += TensorCore.Dot16(element, p.Weights, rowG8, aColumnStep, p.Dense, column + 9, tokenStep);
                }
            }
        }

        var output = tile.OutputIndex;
        var eightRows = 8 * tokenStep;
        p.OutputPairs[output >> 1] = element.Pack(c00.Value, c01.Value);
        p.OutputPairs[(output + eightRows) >> 1] = element.Pack(c02.Value, c03.Value);
        p.OutputPairs[(output + 8) >> 1] = element.Pack(c10.Value, c11.Value);
        p.OutputPairs[(output + eightRows + 8) >> 1] = element.Pack(c12.Value, c13.Value);
    }
}
