using SparseAttention.Layouts;

namespace SparseAttention.Reference;

/// <summary>
/// The ground truth (docs/semantics.md §2): masked softmax attention on the host in float64.
/// Masked entries get weight exactly 0; a row with no allowed key gives zeros.
/// </summary>
public static class DenseReference
{
    /// <summary>Attention output <c>[batch, ctx, heads * headDim]</c>.</summary>
    /// <exception cref="ArgumentException">A buffer's length does not match <paramref name="shape"/>.</exception>
    public static double[] Forward(ReadOnlySpan<double> q, ReadOnlySpan<double> k, ReadOnlySpan<double> v, AttentionShape shape, TokenMask mask, double? scale = null)
    {
        CheckInputs(q, k, v, shape, mask);
        var output = new double[shape.Elements];
        var s = scale ?? 1.0 / Math.Sqrt(shape.HeadDim);
        double[] qa = q.ToArray(), ka = k.ToArray(), va = v.ToArray();

        // (sequence, head) pairs are independent and write disjoint outputs, so they run in parallel.
        Parallel.For(0, shape.Batch * shape.Heads, pair =>
        {
            int n = pair / shape.Heads, h = pair % shape.Heads;
            var p = new double[shape.Ctx];
            {
                for (var t = 0; t < shape.Ctx; t++)
                {
                    Probabilities(qa, ka, shape, mask, s, n, h, t, p);
                    for (var d = 0; d < shape.HeadDim; d++)
                    {
                        double acc = 0;
                        for (var key = 0; key < shape.Ctx; key++)
                        {
                            acc += p[key] * va[shape.Index(n, key, h, d)];
                        }

                        output[shape.Index(n, t, h, d)] = acc;
                    }
                }
            }
        });

        return output;
    }

    /// <summary>Analytic gradients of <c>sum(output * outputGrad)</c> with respect to q, k and v.</summary>
    /// <exception cref="ArgumentException">A buffer's length does not match <paramref name="shape"/>.</exception>
    public static (double[] Dq, double[] Dk, double[] Dv) Backward(
        ReadOnlySpan<double> q, ReadOnlySpan<double> k, ReadOnlySpan<double> v, ReadOnlySpan<double> outputGrad, AttentionShape shape, TokenMask mask, double? scale = null)
    {
        CheckInputs(q, k, v, shape, mask);
        Guard.Length(outputGrad.Length, shape.Elements, nameof(outputGrad));
        var s = scale ?? 1.0 / Math.Sqrt(shape.HeadDim);
        double[] dq = new double[shape.Elements], dk = new double[shape.Elements], dv = new double[shape.Elements];
        double[] qa = q.ToArray(), ka = k.ToArray(), va = v.ToArray(), ga = outputGrad.ToArray();
        Parallel.For(0, shape.Batch * shape.Heads, pair =>
        {
            int n = pair / shape.Heads, h = pair % shape.Heads;
            var p = new double[shape.Ctx];
            var dp = new double[shape.Ctx];
            {
                for (var t = 0; t < shape.Ctx; t++)
                {
                    Probabilities(qa, ka, shape, mask, s, n, h, t, p);
                    double rowDot = 0;
                    for (var key = 0; key < shape.Ctx; key++)
                    {
                        double g = 0;
                        for (var d = 0; d < shape.HeadDim; d++)
                        {
                            var go = ga[shape.Index(n, t, h, d)];
                            g += go * va[shape.Index(n, key, h, d)];
                            dv[shape.Index(n, key, h, d)] += p[key] * go;
                        }

                        dp[key] = g;
                        rowDot += g * p[key];
                    }

                    for (var key = 0; key < shape.Ctx; key++)
                    {
                        var dx = (dp[key] - rowDot) * p[key] * s;
                        if (dx == 0)
                        {
                            continue;
                        }

                        for (var d = 0; d < shape.HeadDim; d++)
                        {
                            dq[shape.Index(n, t, h, d)] += dx * ka[shape.Index(n, key, h, d)];
                            dk[shape.Index(n, key, h, d)] += dx * qa[shape.Index(n, t, h, d)];
                        }
                    }
                }
            }
        });

        return (dq, dk, dv);
    }

    // Fills p with the softmax weights of query t; all zeros when no key is allowed.
    private static void Probabilities(double[] q, double[] k, AttentionShape shape, TokenMask mask, double scale, int n, int h, int t, double[] p)
    {
        var max = double.NegativeInfinity;
        for (var key = 0; key < shape.Ctx; key++)
        {
            if (!mask(h, t, key))
            {
                p[key] = double.NegativeInfinity;
                continue;
            }

            double dot = 0;
            for (var d = 0; d < shape.HeadDim; d++)
            {
                dot += q[shape.Index(n, t, h, d)] * k[shape.Index(n, key, h, d)];
            }

            p[key] = dot * scale;
            max = Math.Max(max, p[key]);
        }

        double sum = 0;
        for (var key = 0; key < shape.Ctx; key++)
        {
            p[key] = double.IsNegativeInfinity(p[key]) ? 0 : Math.Exp(p[key] - max);
            sum += p[key];
        }

        var inverse = sum > 0 ? 1 / sum : 0;
        for (var key = 0; key < shape.Ctx; key++)
        {
            p[key] *= inverse;
        }
    }

    private static void CheckInputs(ReadOnlySpan<double> q, ReadOnlySpan<double> k, ReadOnlySpan<double> v, AttentionShape shape, TokenMask mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        shape.Validate();
        Guard.Length(q.Length, shape.Elements, nameof(q));
        Guard.Length(k.Length, shape.Elements, nameof(k));
        Guard.Length(v.Length, shape.Elements, nameof(v));
    }
}
