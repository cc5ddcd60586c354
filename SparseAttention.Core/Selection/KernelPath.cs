namespace SparseAttention.Selection;

/// <summary>Which kernels run an attention call; <see cref="KernelSelector"/> chooses it once per call.</summary>
public enum KernelPath
{
    /// <summary>The fused kernels (scores never stored): fp16/bf16 on tensor cores.</summary>
    Fused,

    /// <summary>SDD, masked softmax and DSD, fp16/bf16 matrix products on tensor cores (<c>mma.sync</c>).</summary>
    TensorCores,

    /// <summary>The same ops for fp32 inputs, matrix products on TF32 tensor cores (<c>AllowTf32</c>).</summary>
    Tf32,

    /// <summary>The same ops for fp32 inputs on exact fp32 FMA.</summary>
    Fma,

    /// <summary>fp32 FMA with the scores and probabilities stored in bf16 (<c>BFloat16Scores</c>).</summary>
    FmaBf16Scores,

    /// <summary>The fused kernels on Hopper's <c>wgmma</c>, forward and backward (sm_90); their results differ from <see cref="Fused"/>'s in the last bits (another summation order).</summary>
    FusedHopper,
}
