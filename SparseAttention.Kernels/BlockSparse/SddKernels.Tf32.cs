using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

/// <summary>Arguments of the TF32 SDD kernel (fp32 inputs and output).</summary>
public readonly struct SddTf32Params
{
    /// <summary>Left operand, <c>[batch, ctx, heads * headDim]</c> (queries, or output gradients).</summary>
    public ArrayView<float> Left { get; init; }

    /// <summary>Right operand, same shape (keys, or values).</summary>
    public ArrayView<float> Right { get; init; }

    /// <summary>Block-sparse result <c>[batch, heads, blocks, block, block]</c>.</summary>
    public ArrayView<float> Output { get; init; }

    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }
}

/// <summary>SDD v2-tf32: the fp32 opt-in on TF32 tensor cores, one warp per 16x16 output tile.</summary>
public static partial class SddKernels
{
    /// <summary>Computes every enabled block of <c>Left . Right^T</c> with TF32 mma.sync (truncating C# twin on the CPU).</summary>
    public static void LaunchTf32(Accelerator accelerator, in SddTf32Params p)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var warpTiles = SddWarpTile.Count(p.Plan);
        if (warpTiles == 0)
        {
            return;
        }

        KernelLoader.Get<SddTf32Params>(accelerator, Tf32Kernel)(accelerator.DefaultStream, TensorCore.Config(warpTiles, p.Dims), p);
    }

    internal static void Tf32Kernel(SddTf32Params p)
    {
        var dims = p.Dims;
        var tile = new SddWarpTile(p.Plan, dims);
        if (!tile.IsActive)
        {
            return;
        }

        int n = tile.N, h = tile.H, g = tile.G, t = tile.T, leftRow = tile.LeftRow, rightRow = tile.RightRow;
        var tokenStep = (long)dims.Heads * dims.HeadDim;
        var eightRows = 8 * tokenStep;

        Ref<float> c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u, b0 = 0u, b1 = 0u;
        for (var k0 = 0; k0 < dims.HeadDim; k0 += 8)
        {
            var a = dims.Index(n, leftRow + g, h, k0 + t);
            var b = dims.Index(n, rightRow + g, h, k0 + t);
            if (CudaAsm.IsSupported)
            {
                a0 = Tf32.Bits(p.Left[a]);
                a1 = Tf32.Bits(p.Left[a + eightRows]);
                a2 = Tf32.Bits(p.Left[a + 4]);
                a3 = Tf32.Bits(p.Left[a + eightRows + 4]);
                b0 = Tf32.Bits(p.Right[b]);
                b1 = Tf32.Bits(p.Right[b + 4]);
                Tf32.Mma(ref c00, ref c01, ref c02, ref c03, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                b0 = Tf32.Bits(p.Right[b + eightRows]);
                b1 = Tf32.Bits(p.Right[b + eightRows + 4]);
                Tf32.Mma(ref c10, ref c11, ref c12, ref c13, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            }
            else
            {
                var rowG = dims.Index(n, leftRow + g, h, k0);
                var key = dims.Index(n, rightRow + 2 * t, h, k0);
                c00.Value += Tf32.Dot8(p.Left, rowG, 1, p.Right, key, 1);
                c01.Value += Tf32.Dot8(p.Left, rowG, 1, p.Right, key + tokenStep, 1);
                c02.Value += Tf32.Dot8(p.Left, rowG + eightRows, 1, p.Right, key, 1);
                c03.Value += Tf32.Dot8(p.Left, rowG + eightRows, 1, p.Right, key + tokenStep, 1);
                c10.Value += Tf32.Dot8(p.Left, rowG, 1, p.Right, key + eightRows, 1);
                c11.Value += Tf32.Dot8(p.Left, rowG, 1, p.Right, key + eightRows + tokenStep, 1);
                c12.Value += Tf32.Dot8(p.Left, rowG + eightRows, 1, p.Right, key + eightRows, 1);
                c13.Value += Tf32.Dot8(p.Left, rowG + eightRows, 1, p.Right, key + eightRows + tokenStep, 1);
            }
        }

        Tf32.Store(p.Output, tile.OutputIndex, 8L * p.Plan.BlockSize, c00, c01, c02, c03, c10, c11, c12, c13);
    }
}
