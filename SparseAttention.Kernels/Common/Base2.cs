using ILGPU.Algorithms;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>Softmax in base 2 (one fma and one ex2 per element), shared by the fused kernels and the packed softmax.</summary>
internal static class Base2
{
    /// <summary>log2(e): scores are scaled by it once, so each exponential is a bare 2^x.</summary>
    public const float Log2E = 1.44269504088896341f;

    /// <summary>2^x: the hardware approximation on CUDA (exact at -inf, as the masks need).</summary>
    public static float Exp2(float x)
    {
        if (CudaAsm.IsSupported)
        {
            Output<float> result = default;
            Input<float> argument = x;
            CudaAsm.EmitRef("ex2.approx.ftz.f32 %0, %1;", ref result, ref argument);
            return result.Value;
        }

        return XMath.Exp2(x);
    }
}
