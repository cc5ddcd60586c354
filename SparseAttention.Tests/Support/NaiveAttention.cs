using SparseAttention.Layouts;
using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>
/// Attention as a naive implementation in a 16-bit dtype computes it (docs/numerics.md §3): every matrix product accumulated
/// wide and rounded to the dtype, softmax in fp32 with probabilities rounded before <c>P . V</c>. Its error against the
/// float64 reference sets the fp16/bf16 tolerance.
/// </summary>
internal static class NaiveAttention
{
    public static (double[] Output, double[] Dq, double[] Dk, double[] Dv) Run<T>(double[] q, double[] k, double[] v, double[] outputGrad, AttentionShape s, TokenMask mask, double scale)
    {
        static double R(double x) => Numeric.ToDouble(Numeric.FromDouble<T>(x));
        double[] output = new double[s.Elements], dq = new double[s.Elements], dk = new double[s.Elements], dv = new double[s.Elements];
        Parallel.For(0, s.Batch * s.Heads, pair =>
        {
            int n = pair / s.Heads, h = pair % s.Heads;
            double[] p = new double[s.Ctx], dp = new double[s.Ctx];
            {
                var accQ = new double[s.Ctx * s.HeadDim];
                var accK = new double[s.Ctx * s.HeadDim];
                var accV = new double[s.Ctx * s.HeadDim];
                for (var t = 0; t < s.Ctx; t++)
                {
                    var max = double.NegativeInfinity;
                    for (var key = 0; key < s.Ctx; key++)
                    {
                        p[key] = mask(h, t, key) ? R(Dot(q, k, s, n, h, t, key)) * scale : double.NegativeInfinity;
                        max = Math.Max(max, p[key]);
                    }

                    var sum = p.Sum(x => double.IsNegativeInfinity(x) ? 0 : Math.Exp(x - max));
                    for (var key = 0; key < s.Ctx; key++)
                    {
                        p[key] = double.IsNegativeInfinity(p[key]) ? 0 : R(Math.Exp(p[key] - max) / sum);
                    }

                    double rowDot = 0;
                    for (var key = 0; key < s.Ctx; key++)
                    {
                        dp[key] = R(Dot(outputGrad, v, s, n, h, t, key));
                        rowDot += dp[key] * p[key];
                    }

                    for (var d = 0; d < s.HeadDim; d++)
                    {
                        double o = 0;
                        for (var key = 0; key < s.Ctx; key++)
                        {
                            o += p[key] * v[s.Index(n, key, h, d)];
                            accV[key * s.HeadDim + d] += p[key] * outputGrad[s.Index(n, t, h, d)];
                        }

                        output[s.Index(n, t, h, d)] = R(o);
                    }

                    for (var key = 0; key < s.Ctx; key++)
                    {
                        var ds = R((dp[key] - rowDot) * p[key] * scale);
                        for (var d = 0; d < s.HeadDim; d++)
                        {
                            accQ[t * s.HeadDim + d] += ds * k[s.Index(n, key, h, d)];
                            accK[key * s.HeadDim + d] += ds * q[s.Index(n, t, h, d)];
                        }
                    }
                }

                for (var t = 0; t < s.Ctx; t++)
                {
                    for (var d = 0; d < s.HeadDim; d++)
                    {
                        dq[s.Index(n, t, h, d)] = R(accQ[t * s.HeadDim + d]);
                        dk[s.Index(n, t, h, d)] = R(accK[t * s.HeadDim + d]);
                        dv[s.Index(n, t, h, d)] = R(accV[t * s.HeadDim + d]);
                    }
                }
            }
        });

        return (output, dq, dk, dv);
    }

    private static double Dot(double[] a, double[] b, AttentionShape s, int n, int h, int row, int column)
    {
        double acc = 0;
        for (var d = 0; d < s.HeadDim; d++)
        {
            acc += a[s.Index(n, row, h, d)] * b[s.Index(n, column, h, d)];
        }

        return acc;
    }
}
