using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>Fragment helpers shared by the tensor-core kernels (lane <c>l</c>: <c>g = l / 4</c>, <c>t = l % 4</c>).</summary>
internal static class TensorCore
{
    /// <summary>Warps per group of the tensor-core kernels; each warp owns one 16x16 output tile.</summary>
    public const int WarpsPerGroup = 4;

    /// <summary>Groups of <see cref="WarpsPerGroup"/> warps covering <paramref name="warpTiles"/> tiles of every (sequence, head).</summary>
    public static KernelConfig Config(int warpTiles, in Dims dims) =>
        new(new Index2D((warpTiles + WarpsPerGroup - 1) / WarpsPerGroup, dims.Batch * dims.Heads), new Index2D(32 * WarpsPerGroup, 1));

    /// <summary>Two 16-bit elements in one register, the first in the low half.</summary>
    public static uint Pack(ushort low, ushort high) => low | ((uint)high << 16);

    /// <summary>
    /// <paramref name="value"/>, computed here and not at its uses: ILGPU's code placement moves pure arithmetic down to
    /// where it is used, into loops, so a division meant to run once per thread ran on every iteration. An inline
    /// <c>mov</c> on CUDA is a point the computation cannot move past.
    /// </summary>
    public static int Keep(int value)
    {
        if (CudaAsm.IsSupported)
        {
            Output<int> kept = default;
            Input<int> source = value;
            CudaAsm.EmitRef("mov.b32 %0, %1;", ref kept, ref source);
            return kept.Value;
        }

        return value;
    }

    /// <summary>Shared-window byte address of the group's dynamic shared memory (CUDA only; ILGPU 1.5.3 names it <c>__dyn_shared_alloca</c>).</summary>
    public static uint SharedBase()
    {
        Output<uint> address = default;
        CudaAsm.EmitRef("mov.u32 %0, __dyn_shared_alloca;", ref address);
        return address.Value;
    }

    /// <summary>Two floats at 8-byte-aligned shared address <paramref name="address"/> in one load.</summary>
    public static void LoadSharedPair(uint address, out float first, out float second)
    {
        Output<float> x = default, y = default;
        Input<uint> at = address;
        CudaAsm.EmitRef("ld.shared.v2.f32 {%0,%1}, [%2];", ref x, ref y, ref at);
        first = x.Value;
        second = y.Value;
    }

    /// <summary>
    /// <c>ldmatrix .x4</c> (CUDA only): lanes 8i..8i+7 give the shared addresses of the eight 16-byte rows of matrix i,
    /// and lane (g, t) gets the pair (row g, columns 2t, 2t+1) of matrix i in <paramref name="m0"/>..<paramref name="m3"/>.
    /// </summary>
    public static void LoadMatrices(uint address, ref Output<uint> m0, ref Output<uint> m1, ref Output<uint> m2, ref Output<uint> m3)
    {
        Input<uint> rowAddress = address;
        CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];", ref m0, ref m1, ref m2, ref m3, ref rowAddress);
    }

    /// <summary><see cref="LoadMatrices"/> with each matrix transposed: lane (g, t) gets rows 2t and 2t+1 of column g.</summary>
    public static void LoadMatricesTransposed(uint address, ref Output<uint> m0, ref Output<uint> m1, ref Output<uint> m2, ref Output<uint> m3)
    {
        Input<uint> rowAddress = address;
        CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];", ref m0, ref m1, ref m2, ref m3, ref rowAddress);
    }

    /// <summary><see cref="LoadMatrices"/>, or <see cref="LoadMatricesTransposed"/> when <paramref name="transposed"/>, into plain words.</summary>
    public static void LoadMatrixWords(uint address, bool transposed, out uint m0, out uint m1, out uint m2, out uint m3)
    {
        Output<uint> x0 = default, x1 = default, x2 = default, x3 = default;
        if (transposed)
        {
            LoadMatricesTransposed(address, ref x0, ref x1, ref x2, ref x3);
        }
        else
        {
            LoadMatrices(address, ref x0, ref x1, ref x2, ref x3);
        }

        m0 = x0.Value;
        m1 = x1.Value;
        m2 = x2.Value;
        m3 = x3.Value;
    }

    /// <summary>Sum over 16 steps of <c>x[xi + s * xStep] * y[yi + s * yStep]</c> in fp32: the CPU twin of one mma k-step.</summary>
    public static float Dot16<TElement>(TElement element, ArrayView<ushort> x, long xi, long xStep, ArrayView<ushort> y, long yi, long yStep)
        where TElement : struct, IElement<ushort>
    {
        var acc = 0f;
        for (var s = 0; s < 16; s++)
        {
            acc += element.ToFloat(x[xi + s * xStep]) * element.ToFloat(y[yi + s * yStep]);
        }

        return acc;
    }
}
