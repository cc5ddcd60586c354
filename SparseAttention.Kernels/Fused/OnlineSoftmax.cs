using ILGPU;
using ILGPU.Algorithms;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// A lane's running maximum and sum of the online softmax in base 2, for its rows g and g+8: each forward kernel adds
/// one step of scores at a time, whichever instruction computed them.
/// </summary>
internal struct OnlineSoftmax
{
    private float maxLow, maxHigh, sumLow, sumHigh;

    /// <summary>Nothing seen yet: maxima -inf, sums 0.</summary>
    public static OnlineSoftmax Start() => new() { maxLow = float.NegativeInfinity, maxHigh = float.NegativeInfinity };

    /// <summary>
    /// Turns one step's masked scores into exp2(score * <paramref name="scaleLog2"/> - new row max) and adds them to the
    /// sums; the output summed so far must be scaled by <paramref name="alphaLow"/> (row g) and <paramref name="alphaHigh"/>
    /// (row g+8). A row still empty keeps 0. The max is taken on the unscaled scores (the scale is positive) and kept scaled.
    /// </summary>
    public void Step<TScores>(ref TScores scores, float scaleLog2, out float alphaLow, out float alphaHigh)
        where TScores : struct, IRowScores
    {
        float newLow = XMath.Max(maxLow, ScoreTile.QuadMax(scores.LaneMaxLow()) * scaleLog2), newHigh = XMath.Max(maxHigh, ScoreTile.QuadMax(scores.LaneMaxHigh()) * scaleLog2);
        float baseLow = newLow == float.NegativeInfinity ? 0f : newLow, baseHigh = newHigh == float.NegativeInfinity ? 0f : newHigh;
        alphaLow = Base2.Exp2(maxLow - baseLow);
        alphaHigh = Base2.Exp2(maxHigh - baseHigh);
        scores.Exp2Minus(scaleLog2, baseLow, baseHigh);
        sumLow = sumLow * alphaLow + scores.PartialSumLow();
        sumHigh = sumHigh * alphaHigh + scores.PartialSumHigh();
        maxLow = newLow;
        maxHigh = newHigh;
    }

    /// <summary>Adds up the four lanes of each row; after it the inverses and log-sum-exps are the rows' own.</summary>
    public void Finish()
    {
        sumLow = ScoreTile.QuadSum(sumLow);
        sumHigh = ScoreTile.QuadSum(sumHigh);
    }

    /// <summary>1 / row g's sum, or 0 for a row with nothing allowed (its output is exact zeros).</summary>
    public readonly float InverseLow => sumLow > 0f ? 1f / sumLow : 0f;

    /// <summary>1 / row g+8's sum, or 0.</summary>
    public readonly float InverseHigh => sumHigh > 0f ? 1f / sumHigh : 0f;

    /// <summary>Lane t = 0 writes the log-sum-exp (base 2) of rows <paramref name="row"/> and +8; +inf for an empty row.</summary>
    public readonly void WriteLogSumExp(ArrayView<float> logSumExp, in Dims dims, int row, int t)
    {
        if (t == 0)
        {
            logSumExp[dims.RowIndex(Grid.IdxY, row)] = sumLow > 0f ? maxLow + XMath.Log2(sumLow) : float.PositiveInfinity;
            logSumExp[dims.RowIndex(Grid.IdxY, row + 8)] = sumHigh > 0f ? maxHigh + XMath.Log2(sumHigh) : float.PositiveInfinity;
        }
    }
}
