using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>A 16-bit element type with a tensor-core <c>mma.sync.m16n8k16</c> (fp32 accumulate) on CUDA.</summary>
public interface IMmaElement
{
    /// <summary>
    /// D = A . B + D for one warp: A 16x16 in four registers of two packed elements, B 16x8 in two, D 16x8 fp32 in four
    /// (fragment map in docs/tensor-cores.md §2). Only valid where <see cref="CudaAsm.IsSupported"/>.
    /// </summary>
    /// <remarks>
    /// Operands are the kernel's own <see cref="Ref{T}"/>/<see cref="Input{T}"/> locals passed by reference: copying them
    /// into fresh locals per call left a 80-byte local-memory depot that ptxas kept, and the traffic saturated L2 (ncu).
    /// </remarks>
    void Mma(ref Ref<float> d0, ref Ref<float> d1, ref Ref<float> d2, ref Ref<float> d3, ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, ref Input<uint> b0, ref Input<uint> b1);

    /// <summary>Whether this is bf16 (else fp16): the instruction's type suffix where an instruction is written per type.</summary>
    bool IsBFloat16 { get; }

    /// <summary>Rounds two fp32 values to this type and packs them, the first in the low half (one <c>cvt</c> on CUDA).</summary>
    uint Pack(float low, float high);
}
