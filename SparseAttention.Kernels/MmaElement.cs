using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels;

/// <summary>A 16-bit element type with a tensor-core <c>mma.sync.m16n8k16</c> (fp32 accumulate) on CUDA.</summary>
public interface IMmaElement
{
    /// <summary>
    /// D = A . B + D for one warp: A 16x16 in four registers of two packed elements, B 16x8 in two, D 16x8 fp32 in four
    /// (fragment map in ARCHITECTURE.md). Only valid where <see cref="CudaAsm.IsSupported"/>.
    /// </summary>
    void Mma(ref float d0, ref float d1, ref float d2, ref float d3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1);
}
