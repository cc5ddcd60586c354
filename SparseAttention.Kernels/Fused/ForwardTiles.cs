using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

// Register tiles of the forward (v6). ILGPU has no register arrays and does not unroll loops, so each width is a
// nesting of pairs that the compiler inlines into straight-line code over plain fields.

/// <summary>A warp's Q fragments for 16 rows, held in registers for the whole key walk.</summary>
internal interface IQueryFragments
{
    /// <summary>Features covered.</summary>
    int Features { get; }

    /// <summary>Reads the fragments of staged rows <paramref name="row"/>..+15 from feature <paramref name="feature"/>.</summary>
    void Load(in StagedRows rows, int row, int feature);

    /// <summary>
    /// Adds Q . Kᵀ over these features to <paramref name="slab"/>, K being staged rows <paramref name="key"/>..: 16
    /// features at a time across every key of the slab, so consecutive mma have different accumulators.
    /// </summary>
    void Score<TElement, TSlab>(ref TSlab slab, in StagedRows keys, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TSlab : struct, IScoreSlab;
}

/// <summary>Q fragments of 16 features: one mma A operand.</summary>
internal struct QueryChunk : IQueryFragments
{
    private uint a0, a1, a2, a3;

    /// <inheritdoc/>
    public readonly int Features => 16;

    /// <inheritdoc/>
    public void Load(in StagedRows rows, int row, int feature) => rows.RowFragment(row, feature, out a0, out a1, out a2, out a3);

    /// <inheritdoc/>
    public readonly void Score<TElement, TSlab>(ref TSlab slab, in StagedRows keys, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TSlab : struct, IScoreSlab
    {
        slab.LoadKeys(keys, key, feature);
        slab.MultiplyKeys<TElement>(a0, a1, a2, a3);
    }
}

/// <summary>Two sets of Q fragments side by side: <typeparamref name="TLow"/>'s features first.</summary>
internal struct QueryChunks<TLow, THigh> : IQueryFragments
    where TLow : struct, IQueryFragments
    where THigh : struct, IQueryFragments
{
#pragma warning disable CS0649 // Changed only through their own methods, which the compiler does not count as assignments.
    private TLow low;
    private THigh high;
#pragma warning restore CS0649

    /// <inheritdoc/>
    public readonly int Features => default(TLow).Features + default(THigh).Features;

    /// <inheritdoc/>
    public void Load(in StagedRows rows, int row, int feature)
    {
        low.Load(rows, row, feature);
        high.Load(rows, row, feature + default(TLow).Features);
    }

    /// <inheritdoc/>
    public readonly void Score<TElement, TSlab>(ref TSlab slab, in StagedRows keys, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TSlab : struct, IScoreSlab
    {
        low.Score<TElement, TSlab>(ref slab, keys, key, feature);
        high.Score<TElement, TSlab>(ref slab, keys, key, feature + default(TLow).Features);
    }
}

/// <summary>
/// Where a warp's slab sits in its block and in the sequence, for the element mask and the decoding rule: its own 16
/// tokens are the slab's rows (queries, or keys when <paramref name="Transposed"/>) and the step's tokens its columns.
/// </summary>
/// <param name="Plan">The plan's tables.</param>
/// <param name="MaskBase">First mask word of the block.</param>
/// <param name="IsFull">Whether the block's mask is all ones.</param>
/// <param name="Transposed">Whether the rows are keys.</param>
/// <param name="OwnInBlock">The warp's first token within the block.</param>
/// <param name="StepInBlock">The step's first token within the block.</param>
/// <param name="Own">The warp's first token.</param>
/// <param name="Step">The step's first token.</param>
/// <param name="AutoregressAtKey">Keys at or after it need <c>k &lt;= q</c>.</param>
internal readonly record struct SlabSite(PlanTables Plan, long MaskBase, bool IsFull, bool Transposed, int OwnInBlock, int StepInBlock, int Own, int Step, int AutoregressAtKey)
{
    /// <summary>Which elements of the 16-column tile <paramref name="offset"/> columns into the slab this lane keeps (<see cref="ScoreTile"/>'s bit order).</summary>
    public int Allowed(int offset) => Transposed
        ? ChunkMask.ForKeys(Plan, MaskBase, IsFull, OwnInBlock, StepInBlock + offset, Own, Step + offset, AutoregressAtKey)
        : ChunkMask.ForQueries(Plan, MaskBase, IsFull, OwnInBlock, StepInBlock + offset, Own, Step + offset, AutoregressAtKey);
}

/// <summary>
/// A warp's scores for its 16 rows and one step of keys, in registers in the m16n8 accumulator layout: what masking and
/// the online softmax need of them, whichever instruction computed them (<c>mma.sync</c> or Hopper's <c>wgmma</c>).
/// </summary>
internal interface IRowScores
{
    /// <summary>Keys covered (queries in the transposed walk: the slab's columns are the step's tokens).</summary>
    int Keys { get; }

    /// <summary>Masks every score: the step adds nothing to this warp's rows.</summary>
    void MaskAll();

    /// <summary>Sets what <paramref name="site"/> masks to -inf; <paramref name="offset"/> is this part's first key in the slab.</summary>
    void Mask(in SlabSite site, int offset);

    /// <summary>This lane's maximum of row g.</summary>
    float LaneMaxLow();

    /// <summary>This lane's maximum of row g+8.</summary>
    float LaneMaxHigh();

    /// <summary>
    /// exp2(x * <paramref name="scale"/> - row term) in place (one fma each), <paramref name="low"/> for row g,
    /// <paramref name="high"/> for g+8; the scores stay unscaled until here, so a row's max is taken on them and scaled once.
    /// </summary>
    void Exp2Minus(float scale, float low, float high);

    /// <summary>This lane's part of row g's sum.</summary>
    float PartialSumLow();

    /// <summary>This lane's part of row g+8's sum.</summary>
    float PartialSumHigh();
}

/// <summary>A warp's scores for its 16 rows and one step of keys, computed and used by <c>mma.sync</c>.</summary>
internal interface IScoreSlab : IRowScores
{
    /// <summary>S = Q . Kᵀ for staged keys <paramref name="key"/>.. (the slab starts from zero).</summary>
    void Compute<TElement, TQuery>(in TQuery query, in StagedRows keys, int key)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TQuery : struct, IQueryFragments;

    /// <summary>Loads the K fragments (staged rows <paramref name="key"/>.., features <paramref name="feature"/>..+15) of every 16-key tile, all before the first mma.</summary>
    void LoadKeys(in StagedRows keys, int key, int feature);

    /// <summary>Adds A . Kᵀ to every tile, A being 16 rows by 16 features and K the fragments <see cref="LoadKeys"/> left.</summary>
    void MultiplyKeys<TElement>(uint a0, uint a1, uint a2, uint a3)
        where TElement : struct, IElement<ushort>, IMmaElement;

    /// <summary>
    /// The softmax gradient in place, P becoming P * (dP - delta) with dP = dO . Vᵀ computed here one 16-key tile at a
    /// time (no second slab of registers), V staged rows <paramref name="key"/>..; delta per row (g, g+8).
    /// </summary>
    void SoftmaxGrad<TElement, TQuery>(in TQuery outputGrad, in StagedRows values, int key, float deltaLow, float deltaHigh)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TQuery : struct, IQueryFragments;

    /// <summary>output += P . V, P this slab rounded to the element type, V staged rows <paramref name="key"/>..</summary>
    void Accumulate<TElement, TOutput>(ref TOutput output, in StagedRows values, int key)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TOutput : struct, IOutputTiles;

    /// <summary>Transposed (rows are keys): exp2(x * <paramref name="scale"/> - log-sum-exp of the column's query) in place, from step token <paramref name="column"/>.</summary>
    void Exp2MinusColumns(float scale, in StagedTerms terms, int column);

    /// <summary>
    /// Transposed: Pᵀ becomes Pᵀ * (dPᵀ - delta of the column's query), dPᵀ = V . dOᵀ computed one 16-query tile at a
    /// time, V the warp's fragments, dO staged rows <paramref name="column"/>..
    /// </summary>
    void SoftmaxGradColumns<TElement, TFragments>(in TFragments values, in StagedRows outputGrad, int column, in StagedTerms terms)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TFragments : struct, IQueryFragments;
}

/// <summary>Two slabs side by side: <typeparamref name="TLow"/>'s keys first.</summary>
internal struct Slab<TLow, THigh> : IScoreSlab
    where TLow : struct, IScoreSlab
    where THigh : struct, IScoreSlab
{
#pragma warning disable CS0649 // Changed only through their own methods, which the compiler does not count as assignments.
    private TLow low;
    private THigh high;
#pragma warning restore CS0649

    /// <inheritdoc/>
    public readonly int Keys => default(TLow).Keys + default(THigh).Keys;

    /// <inheritdoc/>
    public void Compute<TElement, TQuery>(in TQuery query, in StagedRows keys, int key)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TQuery : struct, IQueryFragments
    {
        this = default;
        query.Score<TElement, Slab<TLow, THigh>>(ref this, keys, key, 0);
    }

    /// <inheritdoc/>
    public void LoadKeys(in StagedRows keys, int key, int feature)
    {
        low.LoadKeys(keys, key, feature);
        high.LoadKeys(keys, key + default(TLow).Keys, feature);
    }

    /// <inheritdoc/>
    public void MultiplyKeys<TElement>(uint a0, uint a1, uint a2, uint a3)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.MultiplyKeys<TElement>(a0, a1, a2, a3);
        high.MultiplyKeys<TElement>(a0, a1, a2, a3);
    }

    /// <inheritdoc/>
    public void MaskAll()
    {
        low.MaskAll();
        high.MaskAll();
    }

    /// <inheritdoc/>
    public void Mask(in SlabSite site, int offset)
    {
        low.Mask(site, offset);
        high.Mask(site, offset + default(TLow).Keys);
    }

    /// <inheritdoc/>
    public readonly float LaneMaxLow() => ILGPU.Algorithms.XMath.Max(low.LaneMaxLow(), high.LaneMaxLow());

    /// <inheritdoc/>
    public readonly float LaneMaxHigh() => ILGPU.Algorithms.XMath.Max(low.LaneMaxHigh(), high.LaneMaxHigh());

    /// <inheritdoc/>
    public void Exp2Minus(float scale, float lowRow, float highRow)
    {
        low.Exp2Minus(scale, lowRow, highRow);
        high.Exp2Minus(scale, lowRow, highRow);
    }

    /// <inheritdoc/>
    public readonly float PartialSumLow() => low.PartialSumLow() + high.PartialSumLow();

    /// <inheritdoc/>
    public readonly float PartialSumHigh() => low.PartialSumHigh() + high.PartialSumHigh();

    /// <inheritdoc/>
    public void SoftmaxGrad<TElement, TQuery>(in TQuery outputGrad, in StagedRows values, int key, float deltaLow, float deltaHigh)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TQuery : struct, IQueryFragments
    {
        low.SoftmaxGrad<TElement, TQuery>(outputGrad, values, key, deltaLow, deltaHigh);
        high.SoftmaxGrad<TElement, TQuery>(outputGrad, values, key + default(TLow).Keys, deltaLow, deltaHigh);
    }

    /// <inheritdoc/>
    public readonly void Accumulate<TElement, TOutput>(ref TOutput output, in StagedRows values, int key)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TOutput : struct, IOutputTiles
    {
        low.Accumulate<TElement, TOutput>(ref output, values, key);
        high.Accumulate<TElement, TOutput>(ref output, values, key + default(TLow).Keys);
    }

    /// <inheritdoc/>
    public void Exp2MinusColumns(float scale, in StagedTerms terms, int column)
    {
        low.Exp2MinusColumns(scale, terms, column);
        high.Exp2MinusColumns(scale, terms, column + default(TLow).Keys);
    }

    /// <inheritdoc/>
    public void SoftmaxGradColumns<TElement, TFragments>(in TFragments values, in StagedRows outputGrad, int column, in StagedTerms terms)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TFragments : struct, IQueryFragments
    {
        low.SoftmaxGradColumns<TElement, TFragments>(values, outputGrad, column, terms);
        high.SoftmaxGradColumns<TElement, TFragments>(values, outputGrad, column + default(TLow).Keys, terms);
    }
}

/// <summary>A warp's fp32 output accumulator of 16 rows, as m16n8 fragments.</summary>
internal interface IOutputTiles
{
    /// <summary>Features covered.</summary>
    int Features { get; }

    /// <summary>Multiplies row g by <paramref name="low"/> and row g+8 by <paramref name="high"/>.</summary>
    void Scale(float low, float high);

    /// <summary>Adds A . V, A the 16 x 16 fragment in <paramref name="a0"/>..<paramref name="a3"/>, V staged rows <paramref name="key"/>..+15 from feature <paramref name="feature"/>.</summary>
    void Accumulate<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, in StagedRows values, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement;

    /// <summary>Loads the V fragments of staged rows <paramref name="key"/>..+15 from feature <paramref name="feature"/> for every tile, all before the first mma.</summary>
    void LoadValues(in StagedRows values, int key, int feature);

    /// <summary>Adds A . V, A the 16 x 16 fragment in <paramref name="a0"/>..<paramref name="a3"/>, V the fragments <see cref="LoadValues"/> left.</summary>
    void MultiplyValues<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3)
        where TElement : struct, IElement<ushort>, IMmaElement;

    /// <summary>Rounds and stores row g times <paramref name="low"/> at <paramref name="index"/> (row g, feature 2t) and row g+8 times <paramref name="high"/> <paramref name="eightRows"/> further.</summary>
    void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement;
}

/// <summary>16 rows by 16 features: two m16n8 accumulators, filled by one <c>ldmatrix.x4.trans</c> of V per 16 keys.</summary>
internal struct Output16 : IOutputTiles, IAccumulator8
{
    private float c0, c1, c2, c3, d0, d1, d2, d3;

    // V fragments for the next product (see ScoreTile's K fragments for why they are loaded ahead).
    private uint v0, v1, v2, v3;

    /// <inheritdoc/>
    public readonly int Features => 16;

    /// <inheritdoc/>
    public readonly void Get(out float x0, out float x1, out float x2, out float x3, out float x4, out float x5, out float x6, out float x7) =>
        (x0, x1, x2, x3, x4, x5, x6, x7) = (c0, c1, c2, c3, d0, d1, d2, d3);

    /// <inheritdoc/>
    public void Set(float x0, float x1, float x2, float x3, float x4, float x5, float x6, float x7) =>
        (c0, c1, c2, c3, d0, d1, d2, d3) = (x0, x1, x2, x3, x4, x5, x6, x7);

    /// <inheritdoc/>
    public void Scale(float low, float high)
    {
        c0 *= low;
        c1 *= low;
        c2 *= high;
        c3 *= high;
        d0 *= low;
        d1 *= low;
        d2 *= high;
        d3 *= high;
    }

    /// <inheritdoc/>
    public void Accumulate<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, in StagedRows values, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        LoadValues(values, key, feature);
        MultiplyValues<TElement>(ref a0, ref a1, ref a2, ref a3);
    }

    /// <inheritdoc/>
    public void LoadValues(in StagedRows values, int key, int feature) => values.DepthFragments(key, feature, out v0, out v1, out v2, out v3);

    /// <inheritdoc/>
    public void MultiplyValues<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        MmaEmulation.Accumulate<TElement>(ref c0, ref c1, ref c2, ref c3, ref a0, ref a1, ref a2, ref a3, v0, v1);
        MmaEmulation.Accumulate<TElement>(ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, v2, v3);
    }

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var element = default(TElement);
        pairs[(index + feature) >> 1] = element.Pack(c0 * low, c1 * low);
        pairs[(index + feature + eightRows) >> 1] = element.Pack(c2 * high, c3 * high);
        pairs[(index + feature + 8) >> 1] = element.Pack(d0 * low, d1 * low);
        pairs[(index + feature + 8 + eightRows) >> 1] = element.Pack(d2 * high, d3 * high);
    }
}

/// <summary>Two output accumulators side by side: <typeparamref name="TLow"/>'s features first.</summary>
internal struct Outputs<TLow, THigh> : IOutputTiles
    where TLow : struct, IOutputTiles
    where THigh : struct, IOutputTiles
{
#pragma warning disable CS0649 // Changed only through their own methods, which the compiler does not count as assignments.
    private TLow low;
    private THigh high;
#pragma warning restore CS0649

    /// <inheritdoc/>
    public readonly int Features => default(TLow).Features + default(THigh).Features;

    /// <inheritdoc/>
    public void Scale(float lowRow, float highRow)
    {
        low.Scale(lowRow, highRow);
        high.Scale(lowRow, highRow);
    }

    /// <inheritdoc/>
    public void Accumulate<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, in StagedRows values, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        LoadValues(values, key, feature);
        MultiplyValues<TElement>(ref a0, ref a1, ref a2, ref a3);
    }

    /// <summary>
    /// <see cref="Accumulate"/> one half after the other, so only half the V fragments are held at once: for head dim
    /// 128, where the dK/dV kernel has no registers for all of them.
    /// </summary>
    public void AccumulateHalves<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, in StagedRows values, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, values, key, feature);
        high.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, values, key, feature + default(TLow).Features);
    }

    /// <inheritdoc/>
    public void LoadValues(in StagedRows values, int key, int feature)
    {
        low.LoadValues(values, key, feature);
        high.LoadValues(values, key, feature + default(TLow).Features);
    }

    /// <inheritdoc/>
    public void MultiplyValues<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.MultiplyValues<TElement>(ref a0, ref a1, ref a2, ref a3);
        high.MultiplyValues<TElement>(ref a0, ref a1, ref a2, ref a3);
    }

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float lowRow, float highRow, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.Store<TElement>(pairs, index, eightRows, lowRow, highRow, feature);
        high.Store<TElement>(pairs, index, eightRows, lowRow, highRow, feature + default(TLow).Features);
    }
}
