using ILGPU;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>What every LUT-walking fused kernel reads: sizes, the plan's tables, the scale and the decoding rule.</summary>
public readonly struct FlashProblem
{
    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }

    /// <summary>The attention scale; positive and finite (each row's maximum is taken unscaled, then scaled).</summary>
    public float Scale { get; init; }

    /// <summary>Keys at or after this position need <c>k &lt;= q</c>; ctx disables the rule.</summary>
    public int AutoregressAtKey { get; init; }
}

/// <summary>Arguments of the fused forward.</summary>
public readonly struct FlashForwardParams
{
    /// <summary>Sizes, tables, scale and decoding rule.</summary>
    public FlashProblem Problem { get; init; }

    /// <summary>Queries <c>[batch, ctx, heads * headDim]</c> as 16-byte quads (the CPU accelerator's copies).</summary>
    public ArrayView<Quad> QueryQuads { get; init; }

    /// <summary>Keys as quads.</summary>
    public ArrayView<Quad> KeyQuads { get; init; }

    /// <summary>Values as quads.</summary>
    public ArrayView<Quad> ValueQuads { get; init; }

    /// <summary>Device address of the queries, for <c>cp.async</c>.</summary>
    public long QueryAddress { get; init; }

    /// <summary>Device address of the keys.</summary>
    public long KeyAddress { get; init; }

    /// <summary>Device address of the values.</summary>
    public long ValueAddress { get; init; }

    /// <summary>The attention output as element pairs.</summary>
    public ArrayView<uint> OutputPairs { get; init; }

    /// <summary>Log-sum-exp of each row's scaled scores in base 2, <c>[batch, heads, ctx]</c>; +inf for a row with nothing to attend to.</summary>
    public ArrayView<float> LogSumExp { get; init; }
}

/// <summary>Arguments of the delta pass, <c>rowsum(O * dO)</c>.</summary>
public readonly struct FlashDeltaParams
{
    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>Forward output as 16-byte quads.</summary>
    public ArrayView<Quad> OutputQuads { get; init; }

    /// <summary>Output gradient as quads.</summary>
    public ArrayView<Quad> OutputGradQuads { get; init; }

    /// <summary><c>rowsum(O * dO)</c>, <c>[batch, heads, ctx]</c>.</summary>
    public ArrayView<float> Delta { get; init; }
}

/// <summary>q, k, v and the output gradient as the backward kernels stage them.</summary>
public readonly struct FlashBackwardInputs
{
    /// <summary>Queries as 16-byte quads (the CPU accelerator's copies).</summary>
    public ArrayView<Quad> QueryQuads { get; init; }

    /// <summary>Keys as quads.</summary>
    public ArrayView<Quad> KeyQuads { get; init; }

    /// <summary>Values as quads.</summary>
    public ArrayView<Quad> ValueQuads { get; init; }

    /// <summary>Output gradient as quads.</summary>
    public ArrayView<Quad> OutputGradQuads { get; init; }

    /// <summary>Device address of the queries, for <c>cp.async</c>.</summary>
    public long QueryAddress { get; init; }

    /// <summary>Device address of the keys.</summary>
    public long KeyAddress { get; init; }

    /// <summary>Device address of the values.</summary>
    public long ValueAddress { get; init; }

    /// <summary>Device address of the output gradient.</summary>
    public long OutputGradAddress { get; init; }
}

/// <summary>Arguments of the dQ pass.</summary>
public readonly struct FlashQueryGradParams
{
    /// <summary>Sizes, tables, scale and decoding rule.</summary>
    public FlashProblem Problem { get; init; }

    /// <summary>q, k, v and the output gradient.</summary>
    public FlashBackwardInputs Inputs { get; init; }

    /// <summary>The forward's log-sum-exp per row.</summary>
    public ArrayView<float> LogSumExp { get; init; }

    /// <summary>The delta pass's result per row.</summary>
    public ArrayView<float> Delta { get; init; }

    /// <summary>Where dQ goes, as element pairs.</summary>
    public ArrayView<uint> QueryGradPairs { get; init; }
}

/// <summary>Arguments of the dK/dV pass.</summary>
public readonly struct FlashKeyValueGradParams
{
    /// <summary>Sizes, tables, scale and decoding rule.</summary>
    public FlashProblem Problem { get; init; }

    /// <summary>q, k, v and the output gradient.</summary>
    public FlashBackwardInputs Inputs { get; init; }

    /// <summary>The forward's log-sum-exp per row (the CPU accelerator's copies).</summary>
    public ArrayView<float> LogSumExp { get; init; }

    /// <summary>Device address of the log-sum-exp.</summary>
    public long LogSumExpAddress { get; init; }

    /// <summary>The delta pass's result per row.</summary>
    public ArrayView<float> Delta { get; init; }

    /// <summary>Device address of delta.</summary>
    public long DeltaAddress { get; init; }

    /// <summary>Where dK goes, as element pairs.</summary>
    public ArrayView<uint> KeyGradPairs { get; init; }

    /// <summary>Where dV goes, as element pairs.</summary>
    public ArrayView<uint> ValueGradPairs { get; init; }
}
