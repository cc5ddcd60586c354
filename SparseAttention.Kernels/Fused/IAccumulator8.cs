namespace SparseAttention.Kernels.Fused;

/// <summary>
/// A warp's two m16n8 fp32 accumulators side by side (16 rows by 16 columns): in register order, columns 0-7 as (row g,
/// 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1), then the same for columns 8-15. That is also the order of four consecutive
/// registers of a Hopper <c>wgmma</c> accumulator, so <c>wgmma</c> chains take these tiles as they are.
/// </summary>
internal interface IAccumulator8
{
    /// <summary>The eight accumulators in register order.</summary>
    void Get(out float c0, out float c1, out float c2, out float c3, out float c4, out float c5, out float c6, out float c7);

    /// <summary>Sets the eight accumulators in register order.</summary>
    void Set(float c0, float c1, float c2, float c3, float c4, float c5, float c6, float c7);
}
