using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// A warp's 16x16 tile of scores in registers (two m16n8 accumulators): lane (g, t) holds rows g and g+8, columns 2t,
/// 2t+1, 8+2t, 9+2t. Bit i of an element mask: bits 0-3 are row g's four columns in that order, bits 4-7 row g+8's.
/// The forward uses it as the 16-key leaf of its <see cref="IScoreSlab"/>.
/// </summary>
internal struct ScoreTile : IScoreSlab, IAccumulator8
{
    private float s00, s01, s02, s03, s10, s11, s12, s13;

    // K fragments for the next product, loaded for every tile of a slab before the first mma: ptxas keeps ldmatrix and
    // mma in program order, so a load issued just before its mma would stall on its whole latency.
    private uint k0, k1, k2, k3;

    /// <inheritdoc/>
    public readonly int Keys => 16;

    /// <inheritdoc/>
    public void Compute<TElement, TQuery>(in TQuery query, in StagedRows keys, int key)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TQuery : struct, IQueryFragments
    {
        this = default;
        query.Score<TElement, ScoreTile>(ref this, keys, key, 0);
    }

    /// <inheritdoc/>
    public void LoadKeys(in StagedRows keys, int key, int feature) => keys.ColumnFragments(key, feature, out k0, out k1, out k2, out k3);

    /// <inheritdoc/>
    public void MultiplyKeys<TElement>(uint a0, uint a1, uint a2, uint a3)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        Input<uint> x0 = a0, x1 = a1, x2 = a2, x3 = a3;
        MmaEmulation.Accumulate<TElement>(ref s00, ref s01, ref s02, ref s03, ref x0, ref x1, ref x2, ref x3, k0, k1);
        MmaEmulation.Accumulate<TElement>(ref s10, ref s11, ref s12, ref s13, ref x0, ref x1, ref x2, ref x3, k2, k3);
    }

    /// <inheritdoc/>
    public readonly void Get(out float c0, out float c1, out float c2, out float c3, out float c4, out float c5, out float c6, out float c7) =>
        (c0, c1, c2, c3, c4, c5, c6, c7) = (s00, s01, s02, s03, s10, s11, s12, s13);

    /// <inheritdoc/>
    public void Set(float c0, float c1, float c2, float c3, float c4, float c5, float c6, float c7) =>
        (s00, s01, s02, s03, s10, s11, s12, s13) = (c0, c1, c2, c3, c4, c5, c6, c7);

    /// <inheritdoc/>
    public void MaskAll() => Mask(0);

    /// <inheritdoc/>
    public void Mask(in SlabSite site, int offset) => Mask(site.Allowed(offset));

    /// <inheritdoc/>
    public readonly float LaneMaxLow() => XMath.Max(XMath.Max(s00, s01), XMath.Max(s10, s11));

    /// <inheritdoc/>
    public readonly float LaneMaxHigh() => XMath.Max(XMath.Max(s02, s03), XMath.Max(s12, s13));

    /// <inheritdoc/>
    public void Exp2Minus(float scale, float low, float high) => Exp2Minus(scale, low, low, low, low, high, high, high, high);

    /// <inheritdoc/>
    public void Exp2MinusColumns(float scale, in StagedTerms terms, int column)
    {
        terms.LogSumExp(column, out var c0, out var c1, out var c8, out var c9);
        Exp2Minus(scale, c0, c1, c8, c9, c0, c1, c8, c9);
    }

    /// <inheritdoc/>
    public void SoftmaxGrad<TElement, TQuery>(in TQuery outputGrad, in StagedRows values, int key, float deltaLow, float deltaHigh)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TQuery : struct, IQueryFragments
    {
        var grad = default(ScoreTile);
        grad.Compute<TElement, TQuery>(outputGrad, values, key);
        TimesGradMinus(grad, deltaLow, deltaHigh);
    }

    /// <inheritdoc/>
    public void SoftmaxGradColumns<TElement, TFragments>(in TFragments values, in StagedRows outputGrad, int column, in StagedTerms terms)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TFragments : struct, IQueryFragments
    {
        var grad = default(ScoreTile);
        grad.Compute<TElement, TFragments>(values, outputGrad, column);
        TimesGradMinusColumns(grad, terms, column);
    }

    /// <summary>P becomes P * (dP - delta), <paramref name="grad"/> holding dP, row g's delta <paramref name="deltaLow"/> and row g+8's <paramref name="deltaHigh"/>.</summary>
    public void TimesGradMinus(in ScoreTile grad, float deltaLow, float deltaHigh) =>
        TimesGradMinus(grad, deltaLow, deltaLow, deltaLow, deltaLow, deltaHigh, deltaHigh, deltaHigh, deltaHigh);

    /// <summary>Transposed (rows are keys): Pᵀ becomes Pᵀ * (dPᵀ - delta of the column's query), from step token <paramref name="column"/>.</summary>
    public void TimesGradMinusColumns(in ScoreTile grad, in StagedTerms terms, int column)
    {
        terms.Delta(column, out var c0, out var c1, out var c8, out var c9);
        TimesGradMinus(grad, c0, c1, c8, c9, c0, c1, c8, c9);
    }

    /// <inheritdoc/>
    public readonly void Accumulate<TElement, TOutput>(ref TOutput output, in StagedRows values, int key)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TOutput : struct, IOutputTiles
    {
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u;
        ToOperand<TElement>(ref a0, ref a1, ref a2, ref a3);
        output.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, values, key, 0);
    }

    /// <summary>Elements whose bit in <paramref name="allowed"/> is clear become -inf.</summary>
    public void Mask(int allowed)
    {
        s00 = (allowed & 1) != 0 ? s00 : float.NegativeInfinity;
        s01 = (allowed & 2) != 0 ? s01 : float.NegativeInfinity;
        s10 = (allowed & 4) != 0 ? s10 : float.NegativeInfinity;
        s11 = (allowed & 8) != 0 ? s11 : float.NegativeInfinity;
        s02 = (allowed & 16) != 0 ? s02 : float.NegativeInfinity;
        s03 = (allowed & 32) != 0 ? s03 : float.NegativeInfinity;
        s12 = (allowed & 64) != 0 ? s12 : float.NegativeInfinity;
        s13 = (allowed & 128) != 0 ? s13 : float.NegativeInfinity;
    }

    /// <inheritdoc/>
    public readonly float PartialSumLow() => s00 + s01 + s10 + s11;

    /// <inheritdoc/>
    public readonly float PartialSumHigh() => s02 + s03 + s12 + s13;

    /// <summary>The tile rounded to the element type as the A operand (16x16, row-major) of the next mma.</summary>
    public readonly void ToOperand<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var element = default(TElement);
        a0 = element.Pack(s00, s01);
        a1 = element.Pack(s02, s03);
        a2 = element.Pack(s10, s11);
        a3 = element.Pack(s12, s13);
    }

    // exp2(x * scale - term), each element with its own term (in field order: row g's four, then row g+8's).
    private void Exp2Minus(float scale, float t00, float t01, float t10, float t11, float t02, float t03, float t12, float t13)
    {
        s00 = Base2.Exp2((s00 * scale) - t00);
        s01 = Base2.Exp2((s01 * scale) - t01);
        s10 = Base2.Exp2((s10 * scale) - t10);
        s11 = Base2.Exp2((s11 * scale) - t11);
        s02 = Base2.Exp2((s02 * scale) - t02);
        s03 = Base2.Exp2((s03 * scale) - t03);
        s12 = Base2.Exp2((s12 * scale) - t12);
        s13 = Base2.Exp2((s13 * scale) - t13);
    }

    // P becomes P * (dP - term), each element with its own term (the same order).
    private void TimesGradMinus(in ScoreTile grad, float t00, float t01, float t10, float t11, float t02, float t03, float t12, float t13)
    {
        s00 *= grad.s00 - t00;
        s01 *= grad.s01 - t01;
        s10 *= grad.s10 - t10;
        s11 *= grad.s11 - t11;
        s02 *= grad.s02 - t02;
        s03 *= grad.s03 - t03;
        s12 *= grad.s12 - t12;
        s13 *= grad.s13 - t13;
    }

    /// <summary>Maximum over the four lanes of a row (a quad).</summary>
    public static float QuadMax(float value)
    {
        value = XMath.Max(value, Warp.ShuffleXor(value, 1));
        return XMath.Max(value, Warp.ShuffleXor(value, 2));
    }

    /// <summary>Sum over the four lanes of a row (a quad).</summary>
    public static float QuadSum(float value)
    {
        value += Warp.ShuffleXor(value, 1);
        return value + Warp.ShuffleXor(value, 2);
    }
}
