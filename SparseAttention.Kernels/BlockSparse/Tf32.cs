using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.BlockSparse;

/// <summary>TF32 tensor-core helpers for the fp32 opt-in path (<c>mma.sync.m16n8k8</c>, fp32 accumulate).</summary>
internal static class Tf32
{
    /// <summary>
    /// D += A . B for one warp: A 16x8 in four registers (one element each: (g, t), (g+8, t), (g, t+4), (g+8, t+4)),
    /// B 8x8 in two ((k t, n g), (k t+4, n g)), D 16x8 fp32 as in the 16-bit kernels. Only valid where CUDA is.
    /// </summary>
    public static void Mma(ref Ref<float> d0, ref Ref<float> d1, ref Ref<float> d2, ref Ref<float> d3, ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, ref Input<uint> b0, ref Input<uint> b1) =>
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};", ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);

    /// <summary>An fp32 as the tensor cores read it: the low 13 mantissa bits dropped.</summary>
    public static float Truncate(float value) => Interop.IntAsFloat(Interop.FloatAsInt(value) & 0xFFFFE000u);

    /// <summary>The bits the tensor cores are given for <paramref name="value"/>.</summary>
    public static uint Bits(float value) => Interop.FloatAsInt(value);

    /// <summary>Sum over 8 steps of truncated products: the CPU twin of one m16n8k8 k-step for one output.</summary>
    public static float Dot8(ArrayView<float> x, long xi, long xStep, ArrayView<float> y, long yi, long yStep)
    {
        var acc = 0f;
        for (var s = 0; s < 8; s++)
        {
            acc += Truncate(x[xi + s * xStep]) * Truncate(y[yi + s * yStep]);
        }

        return acc;
    }

    /// <summary>Writes a lane's eight accumulators: (g, 2t..2t+1) and (g+8, ..) of both 16x8 halves, eight rows apart.</summary>
    public static void Store(ArrayView<float> output, long index, long eightRows, Ref<float> c00, Ref<float> c01, Ref<float> c02, Ref<float> c03, Ref<float> c10, Ref<float> c11, Ref<float> c12, Ref<float> c13)
    {
        output[index] = c00.Value;
        output[index + 1] = c01.Value;
        output[index + eightRows] = c02.Value;
        output[index + eightRows + 1] = c03.Value;
        output[index + 8] = c10.Value;
        output[index + 9] = c11.Value;
        output[index + eightRows + 8] = c12.Value;
        output[index + eightRows + 9] = c13.Value;
    }
}
