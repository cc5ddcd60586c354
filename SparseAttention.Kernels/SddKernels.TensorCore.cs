using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels;

/// <summary>SDD v2: tensor cores for fp16 and bf16.</summary>
public static partial class SddKernels
{
    /// <summary>Computes every enabled block of <c>Left . Right^T</c> with mma.sync (plain C# twin on the CPU accelerator).</summary>
    public static void LaunchTensorCore<TElement>(Accelerator accelerator, in SddParams<ushort> p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var warpTiles = SddWarpTile.Count(p.Plan);
        if (warpTiles == 0)
        {
            return;
        }

        KernelCache.Get<SddParams<ushort>>(accelerator, TensorCoreKernel<TElement>)(accelerator.DefaultStream, TensorCore.Config(warpTiles, p.Dims), p);
    }

    internal static void TensorCoreKernel<TElement>(SddParams<ushort> p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var element = default(TElement);
        var dims = p.Dims;
        var tile = new SddWarpTile(p.Plan, dims);
        if (!tile.IsActive)
        {
            return;
        }

        int n = tile.N, h = tile.H, g = tile.G, t = tile.T, leftRow = tile.LeftRow, rightRow = tile.RightRow;
        var eightRows = 8L * dims.Heads * dims.HeadDim;

        // Accumulators of the two 16x8 tiles (keys +0..7 and +8..15): (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1).
        Ref<float> c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u, b0 = 0u, b1 = 0u;
        // Fragment addresses advance by 16 elements (8 pairs) per k-step; only the offsets are computed in the loop.
        var aFirst = dims.Index(n, leftRow + g, h, 2 * t);
        var bFirst = dims.Index(n, rightRow + g, h, 2 * t);
        long aPair = aFirst >> 1, bPair = bFirst >> 1, eightRowPairs = eightRows >> 1;
        for (var k0 = 0; k0 < dims.HeadDim; k0 += 16)
        {
            if (CudaAsm.IsSupported)
            {
                var ap = aPair + (k0 >> 1);
                var bp = bPair + (k0 >> 1);
                a0 = p.LeftPairs[ap];
                a1 = p.LeftPairs[ap + eightRowPairs];
                a2 = p.LeftPairs[ap + 4];
                a3 = p.LeftPairs[ap + eightRowPairs + 4];
                b0 = p.RightPairs[bp];
                b1 = p.RightPairs[bp + 4];
                element.Mma(ref c00, ref c01, ref c02, ref c03, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                b0 = p.RightPairs[bp + eightRowPairs];
                b1 = p.RightPairs[bp + eightRowPairs + 4];
                element.Mma(ref c10, ref c11, ref c12, ref c13, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            }
            else
            {
                var rowG = aFirst - 2 * t + k0;
                var key = dims.Index(n, rightRow + 2 * t, h, k0);
                var keyStep = (long)dims.Heads * dims.HeadDim;
                c00.Value += TensorCore.Dot16(element, p.Left, rowG, 1, p.Right, key, 1);
                c01.Value += TensorCore.Dot16(element, p.Left, rowG, 1, p.Right, key + keyStep, 1);
                c02.Value += TensorCore.Dot16(element, p.Left, rowG + eightRows, 1, p.Right, key, 1);
                c03.Value += TensorCore.Dot16(element, p.Left, rowG + eightRows, 1, p.Right, key + keyStep, 1);
                c10.Value += TensorCore.Dot16(element, p.Left, rowG, 1, p.Right, key + eightRows, 1);
                c11.Value += TensorCore.Dot16(element, p.Left, rowG, 1, p.Right, key + eightRows + keyStep, 1);
                c12.Value += TensorCore.Dot16(element, p.Left, rowG + eightRows, 1, p.Right, key + eightRows, 1);
                c13.Value += TensorCore.Dot16(element, p.Left, rowG + eightRows, 1, p.Right, key + eightRows + keyStep, 1);
            }
        }

        var output = tile.OutputIndex;
        var eightOutputRows = 8L * p.Plan.BlockSize;
        p.OutputPairs[output >> 1] = element.Pack(c00.Value, c01.Value);
        p.OutputPairs[(output + eightOutputRows) >> 1] = element.Pack(c02.Value, c03.Value);
        p.OutputPairs[(output + 8) >> 1] = element.Pack(c10.Value, c11.Value);
        p.OutputPairs[(output + eightOutputRows + 8) >> 1] = element.Pack(c12.Value, c13.Value);
    }
}
