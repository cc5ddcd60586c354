namespace SparseAttention.Attention;

/// <summary>Options of an attention call; every field has the default a PyTorch user expects.</summary>
public sealed record AttentionOptions
{
    /// <summary>Multiplies the scores; <c>1 / sqrt(headDim)</c> when null; must be positive and finite.</summary>
    public double? Scale { get; init; }

    /// <summary>The original's <c>autoregress_at_key</c>: keys at or after it are seen only by queries at or after them.</summary>
    public int? AutoregressAtKey { get; init; }

    /// <summary>Keep only the inputs during forward and recompute the probabilities during backward (less memory).</summary>
    public bool Recompute { get; init; }

    /// <summary>fp32 inputs only: run the matrix products on TF32 tensor cores (like PyTorch's <c>allow_tf32</c>); off by default.</summary>
    public bool AllowTf32 { get; init; }

    /// <summary>fp32 inputs only: keep the block-sparse scores and probabilities in bf16, halving their memory (the original kept its logits in bf16).</summary>
    public bool BFloat16Scores { get; init; }

    /// <summary>
    /// The fused kernels (scores never stored): null runs them on CUDA wherever they apply (fp16/bf16, head dim 32, 64 or
    /// 128, block size 32, 64 or 128), true asks for them on any device and rejects other cases, false runs the unfused ops.
    /// </summary>
    public bool? Fused { get; init; }

    /// <summary>
    /// The fused kernels on Hopper's <c>wgmma</c>, forward and backward (head dim 64 or 128, block size 64 or 128):
    /// null runs them on compute capability 9.0 devices wherever it covers the fused call; true asks for it on
    /// such a device or the CPU accelerator (which runs their C# twins) and rejects other devices, other shapes and
    /// <see cref="Fused"/> false; false runs the portable <c>mma.sync</c> kernels. Its results differ from theirs in the last bits.
    /// </summary>
    public bool? Hopper { get; init; }

    /// <summary>The defaults.</summary>
    public static AttentionOptions Default { get; } = new();
}
