using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

/// <summary>
/// A warp's 16 rows of the warpgroup's 64 x 64 scores of one key step, as four <see cref="ScoreTile"/>s in
/// <c>wgmma</c> register order: masking and the online softmax are the tiles' own.
/// </summary>
internal struct WideScores : IRowScores
{
#pragma warning disable CS0649 // Changed only through their own methods, which the compiler does not count as assignments.
    private ScoreTile t0, t1, t2, t3;
#pragma warning restore CS0649

    /// <inheritdoc/>
    public readonly int Keys => 64;

    /// <summary>S = Q . Kᵀ over <paramref name="features"/> features (the scores start from zero): one <c>wgmma</c> chain.</summary>
    public void Compute<TElement>(in CoreTile query, in CoreTile keys, int features)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        this = default;
        Wgmma.SharedShared<TElement, ScoreTile>(ref t0, ref t1, ref t2, ref t3, query, keys, features);
    }

    /// <summary>output += P . V, P these scores rounded to the element type (registers, 16 keys per k-step), V staged.</summary>
    public readonly void Accumulate<TElement, TOutput>(ref TOutput output, in CoreTile values)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TOutput : struct, IWideOutput
    {
        Multiply<TElement, TOutput>(t0, t1, ref output, values, 0);
        Multiply<TElement, TOutput>(t2, t3, ref output, values, 2);
    }

    /// <inheritdoc/>
    public void MaskAll()
    {
        t0.MaskAll();
        t1.MaskAll();
        t2.MaskAll();
        t3.MaskAll();
    }

    /// <inheritdoc/>
    public void Mask(in SlabSite site, int offset)
    {
        t0.Mask(site, offset);
        t1.Mask(site, offset + 16);
        t2.Mask(site, offset + 32);
        t3.Mask(site, offset + 48);
    }

    /// <inheritdoc/>
    public readonly float LaneMaxLow() => ILGPU.Algorithms.XMath.Max(ILGPU.Algorithms.XMath.Max(t0.LaneMaxLow(), t1.LaneMaxLow()), ILGPU.Algorithms.XMath.Max(t2.LaneMaxLow(), t3.LaneMaxLow()));

    /// <inheritdoc/>
    public readonly float LaneMaxHigh() => ILGPU.Algorithms.XMath.Max(ILGPU.Algorithms.XMath.Max(t0.LaneMaxHigh(), t1.LaneMaxHigh()), ILGPU.Algorithms.XMath.Max(t2.LaneMaxHigh(), t3.LaneMaxHigh()));

    /// <inheritdoc/>
    public void Exp2Minus(float scale, float low, float high)
    {
        t0.Exp2Minus(scale, low, high);
        t1.Exp2Minus(scale, low, high);
        t2.Exp2Minus(scale, low, high);
        t3.Exp2Minus(scale, low, high);
    }

    /// <inheritdoc/>
    public readonly float PartialSumLow() => t0.PartialSumLow() + t1.PartialSumLow() + (t2.PartialSumLow() + t3.PartialSumLow());

    /// <inheritdoc/>
    public readonly float PartialSumHigh() => t0.PartialSumHigh() + t1.PartialSumHigh() + (t2.PartialSumHigh() + t3.PartialSumHigh());

    // Keys 16 kStep..+31: the two tiles as the A operands, times V's rows of those keys.
    private static void Multiply<TElement, TOutput>(in ScoreTile first, in ScoreTile second, ref TOutput output, in CoreTile values, int kStep)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TOutput : struct, IWideOutput
    {
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u, a4 = 0u, a5 = 0u, a6 = 0u, a7 = 0u;
        first.ToOperand<TElement>(ref a0, ref a1, ref a2, ref a3);
        second.ToOperand<TElement>(ref a4, ref a5, ref a6, ref a7);
        output.Multiply<TElement>(new ValueOperands(a0.Value, a1.Value, a2.Value, a3.Value, a4.Value, a5.Value, a6.Value, a7.Value), values, kStep, 0);
    }
}

/// <summary>P of two k-steps as <c>wgmma</c> A operands in registers: each warp's <c>mma.sync</c> A fragments of 16 keys.</summary>
internal readonly record struct ValueOperands(uint A0, uint A1, uint A2, uint A3, uint A4, uint A5, uint A6, uint A7);

/// <summary>A warp's fp32 output accumulator of 16 rows, as <c>wgmma</c> accumulators of 64 features each.</summary>
internal interface IWideOutput
{
    /// <summary>Features covered.</summary>
    int Features { get; }

    /// <summary>Multiplies row g by <paramref name="low"/> and row g+8 by <paramref name="high"/>.</summary>
    void Scale(float low, float high);

    /// <summary>Adds A . V: A the operands in registers, V staged keys 16 <paramref name="kStep"/>..+31 from feature <paramref name="feature"/>.</summary>
    void Multiply<TElement>(in ValueOperands a, in CoreTile values, int kStep, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement;

    /// <summary>Rounds and stores row g times <paramref name="low"/> at <paramref name="index"/> (row g, feature 2t) and row g+8 times <paramref name="high"/> <paramref name="eightRows"/> further.</summary>
    void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement;
}

/// <summary>Output accumulator of 64 features: one <c>wgmma</c> accumulator of four <see cref="Output16"/> tiles.</summary>
internal struct WideOutput64 : IWideOutput
{
#pragma warning disable CS0649 // Changed only through their own methods, which the compiler does not count as assignments.
    private Output16 o0, o1, o2, o3;
#pragma warning restore CS0649

    /// <inheritdoc/>
    public readonly int Features => 64;

    /// <inheritdoc/>
    public void Scale(float low, float high)
    {
        o0.Scale(low, high);
        o1.Scale(low, high);
        o2.Scale(low, high);
        o3.Scale(low, high);
    }

    /// <inheritdoc/>
    public void Multiply<TElement>(in ValueOperands a, in CoreTile values, int kStep, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement =>
        Wgmma.RegisterShared<TElement, Output16>(ref o0, ref o1, ref o2, ref o3, a.A0, a.A1, a.A2, a.A3, a.A4, a.A5, a.A6, a.A7, values, kStep, feature);

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        o0.Store<TElement>(pairs, index, eightRows, low, high, feature);
        o1.Store<TElement>(pairs, index, eightRows, low, high, feature + 16);
        o2.Store<TElement>(pairs, index, eightRows, low, high, feature + 32);
        o3.Store<TElement>(pairs, index, eightRows, low, high, feature + 48);
    }
}

/// <summary>Output accumulator of 128 features: two <c>wgmma</c> accumulators of 64.</summary>
internal struct WideOutput128 : IWideOutput
{
#pragma warning disable CS0649 // Changed only through their own methods, which the compiler does not count as assignments.
    private WideOutput64 low, high;
#pragma warning restore CS0649

    /// <inheritdoc/>
    public readonly int Features => 128;

    /// <inheritdoc/>
    public void Scale(float lowRow, float highRow)
    {
        low.Scale(lowRow, highRow);
        high.Scale(lowRow, highRow);
    }

    /// <inheritdoc/>
    public void Multiply<TElement>(in ValueOperands a, in CoreTile values, int kStep, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.Multiply<TElement>(a, values, kStep, feature);
        high.Multiply<TElement>(a, values, kStep, feature + 64);
    }

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float lowRow, float highRow, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.Store<TElement>(pairs, index, eightRows, lowRow, highRow, feature);
        high.Store<TElement>(pairs, index, eightRows, lowRow, highRow, feature + 64);
    }
}
