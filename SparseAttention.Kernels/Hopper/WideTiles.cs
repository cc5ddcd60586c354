using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

/// <summary>
/// A warp's 16 rows of the warpgroup's 64 x 64 scores of one step (S or dP of a key step; transposed, Sᵀ or dPᵀ of a
/// query step), as four <see cref="ScoreTile"/>s in <c>wgmma</c> register order: masking and the softmax are the tiles' own.
/// </summary>
internal struct WideScores : IRowScores
{
#pragma warning disable CS0649 // Changed only through their own methods, which the compiler does not count as assignments.
    private ScoreTile t0, t1, t2, t3;
#pragma warning restore CS0649

    /// <inheritdoc/>
    public readonly int Keys => 64;

    /// <summary>
    /// A . Bᵀ over <paramref name="features"/> features, from zero: one <c>wgmma</c> chain (S = Q . Kᵀ, dP = dO . Vᵀ,
    /// and transposed Sᵀ = K . Qᵀ, dPᵀ = V . dOᵀ).
    /// </summary>
    public void Compute<TElement>(in CoreTile rows, in CoreTile columns, int features)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        this = default;
        Wgmma.SharedShared<TElement, ScoreTile>(ref t0, ref t1, ref t2, ref t3, rows, columns, features);
    }

    /// <summary>Transposed (rows are keys): exp2(x * <paramref name="scale"/> - log-sum-exp of the column's query) in place.</summary>
    public void Exp2MinusColumns(float scale, in StagedTerms terms)
    {
        t0.Exp2MinusColumns(scale, terms, 0);
        t1.Exp2MinusColumns(scale, terms, 16);
        t2.Exp2MinusColumns(scale, terms, 32);
        t3.Exp2MinusColumns(scale, terms, 48);
    }

    /// <summary>P becomes dS = P * (dP - delta), <paramref name="grad"/> holding dP, row g's delta <paramref name="deltaLow"/> and row g+8's <paramref name="deltaHigh"/>.</summary>
    public void TimesGradMinus(in WideScores grad, float deltaLow, float deltaHigh)
    {
        t0.TimesGradMinus(grad.t0, deltaLow, deltaHigh);
        t1.TimesGradMinus(grad.t1, deltaLow, deltaHigh);
        t2.TimesGradMinus(grad.t2, deltaLow, deltaHigh);
        t3.TimesGradMinus(grad.t3, deltaLow, deltaHigh);
    }

    /// <summary>Transposed: Pᵀ becomes dSᵀ = Pᵀ * (dPᵀ - delta of the column's query), <paramref name="grad"/> holding dPᵀ.</summary>
    public void TimesGradMinusColumns(in WideScores grad, in StagedTerms terms)
    {
        t0.TimesGradMinusColumns(grad.t0, terms, 0);
        t1.TimesGradMinusColumns(grad.t1, terms, 16);
        t2.TimesGradMinusColumns(grad.t2, terms, 32);
        t3.TimesGradMinusColumns(grad.t3, terms, 48);
    }

    /// <summary>These scores rounded to the element type, as the A operands of a register-A product (16 columns per k-step): P for P . V, dS for dS . K.</summary>
    public readonly ValueOperands Operands<TElement>()
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u, a4 = 0u, a5 = 0u, a6 = 0u, a7 = 0u;
        Input<uint> a8 = 0u, a9 = 0u, a10 = 0u, a11 = 0u, a12 = 0u, a13 = 0u, a14 = 0u, a15 = 0u;
        t0.ToOperand<TElement>(ref a0, ref a1, ref a2, ref a3);
        t1.ToOperand<TElement>(ref a4, ref a5, ref a6, ref a7);
        t2.ToOperand<TElement>(ref a8, ref a9, ref a10, ref a11);
        t3.ToOperand<TElement>(ref a12, ref a13, ref a14, ref a15);
        return new ValueOperands(
            ValueOperands.Pair(a0.Value, a1.Value),
            ValueOperands.Pair(a2.Value, a3.Value),
            ValueOperands.Pair(a4.Value, a5.Value),
            ValueOperands.Pair(a6.Value, a7.Value),
            ValueOperands.Pair(a8.Value, a9.Value),
            ValueOperands.Pair(a10.Value, a11.Value),
            ValueOperands.Pair(a12.Value, a13.Value),
            ValueOperands.Pair(a14.Value, a15.Value));
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
}

/// <summary>
/// P (or dS) of four k-steps as <c>wgmma</c> A operands in registers (each warp's <c>mma.sync</c> A fragments of 16 keys), two
/// registers to a 64-bit pair so that one statement's 44 operands hold them all.
/// </summary>
internal readonly record struct ValueOperands(ulong P0, ulong P1, ulong P2, ulong P3, ulong P4, ulong P5, ulong P6, ulong P7)
{
    /// <summary>Registers <paramref name="low"/> and <paramref name="high"/> as one pair (low in the low half, as <c>mov.b64 {low, high}</c> reads it).</summary>
    public static ulong Pair(uint low, uint high) => ((ulong)high << 32) | low;

    /// <summary>The four A registers of k-step <paramref name="kStep"/> (the CPU twins' read).</summary>
    public void Fragments(int kStep, out uint a0, out uint a1, out uint a2, out uint a3)
    {
        var (first, second) = kStep switch
        {
            0 => (P0, P1),
            1 => (P2, P3),
            2 => (P4, P5),
            _ => (P6, P7),
        };
        (a0, a1, a2, a3) = ((uint)first, (uint)(first >> 32), (uint)second, (uint)(second >> 32));
    }
}

/// <summary>A warp's fp32 output accumulator of 16 rows, as <c>wgmma</c> accumulators of 64 features each.</summary>
internal interface IWideOutput
{
    /// <summary>Features covered.</summary>
    int Features { get; }

    /// <summary>Multiplies row g by <paramref name="low"/> and row g+8 by <paramref name="high"/>, then adds A . V: A the operands in registers, V the 64 staged keys.</summary>
    void Accumulate<TElement>(in ValueOperands a, float low, float high, in CoreTile values)
        where TElement : struct, IElement<ushort>, IMmaElement;

    /// <summary>Adds A . B: A the operands in registers, B the 64 staged rows (dV += Pᵀ . dO, dK += dSᵀ . Q, dQ += dS . K).</summary>
    void Add<TElement>(in ValueOperands a, in CoreTile rows)
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
    public void Accumulate<TElement>(in ValueOperands a, float low, float high, in CoreTile values)
        where TElement : struct, IElement<ushort>, IMmaElement =>
        Multiply<TElement>(a, true, low, high, values, 0);

    /// <inheritdoc/>
    public void Add<TElement>(in ValueOperands a, in CoreTile rows)
        where TElement : struct, IElement<ushort>, IMmaElement =>
        Multiply<TElement>(a, false, 1f, 1f, rows, 0);

    /// <summary>As <see cref="Accumulate"/> (or, unless <paramref name="rescale"/>, <see cref="Add"/>), for features <paramref name="feature"/>..+63 of the staged rows.</summary>
    public void Multiply<TElement>(in ValueOperands a, bool rescale, float low, float high, in CoreTile rows, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement =>
        Wgmma.RegisterShared<TElement, Output16>(ref o0, ref o1, ref o2, ref o3, a, rescale, low, high, rows, feature);

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
    public void Accumulate<TElement>(in ValueOperands a, float lowRow, float highRow, in CoreTile values)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.Multiply<TElement>(a, true, lowRow, highRow, values, 0);
        high.Multiply<TElement>(a, true, lowRow, highRow, values, 64);
    }

    /// <inheritdoc/>
    public void Add<TElement>(in ValueOperands a, in CoreTile rows)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.Multiply<TElement>(a, false, 1f, 1f, rows, 0);
        high.Multiply<TElement>(a, false, 1f, 1f, rows, 64);
    }

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float lowRow, float highRow, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.Store<TElement>(pairs, index, eightRows, lowRow, highRow, feature);
        high.Store<TElement>(pairs, index, eightRows, lowRow, highRow, feature + 64);
    }
}
