using SparseAttention.Layouts;
using SparseAttention.Reference;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

[TestClass]
public sealed class DenseReferenceTests
{
    [TestMethod]
    [DataRow("all")]
    [DataRow("local")]
    [DataRow("strided")]
    [DataRow("fixed")]
    public void MatchesANaiveScoreMatrixLoop(string mode)
    {
        var random = TestData.NewRandom(mode);
        var shape = new AttentionShape(2, 128, 4, 8);
        var mask = LayoutTests.Pattern(mode).ToTokenMask(shape.Ctx, 16, shape.Heads);
        var (q, k, v) = (Random(random, shape), Random(random, shape), Random(random, shape));
        var actual = DenseReference.Forward(q, k, v, shape, mask);
        var expected = NaiveAttention(q, k, v, shape, mask, 1 / Math.Sqrt(shape.HeadDim));
        Assert.IsLessThan(1e-12, Errors.Relative(actual, expected));
    }

    [TestMethod]
    public void DenseModesMatchTheirBlockLayouts()
    {
        const int ctx = 256, heads = 2, block = 16;
        foreach (var pattern in new[] { AttentionPattern.All, AttentionPattern.Local(32) })
        {
            var layout = pattern.ToLayout(ctx, block, heads);
            var mask = pattern.ToTokenMask(ctx, block, heads);
            AssertSameMask(ctx, heads, mask, (h, q, k) => layout.IsAllowed(h, q, k), pattern.ToString());
        }

        // Strided: the layout lives on the transposed sequence.
        const int stride = 16;
        var strided = AttentionPattern.Strided(stride);
        var transposedLayout = strided.ToLayout(ctx, block, heads);
        AssertSameMask(ctx, heads, strided.ToTokenMask(ctx, block, heads),
            (h, q, k) => transposedLayout.IsAllowed(h, StridedTransposition.Forward(q, ctx, stride), StridedTransposition.Forward(k, ctx, stride)), "strided");
    }

    [TestMethod]
    public void RowWithNothingAllowedGivesZerosNotNaN()
    {
        var random = TestData.NewRandom("empty row");
        var shape = new AttentionShape(1, 32, 1, 8);
        TokenMask mask = (_, q, k) => q >= 16 && k <= q;
        var (q, k, v, g) = (Random(random, shape), Random(random, shape), Random(random, shape), Random(random, shape));
        var output = DenseReference.Forward(q, k, v, shape, mask);
        var (dq, dk, dv) = DenseReference.Backward(q, k, v, g, shape, mask);
        for (var t = 0; t < 16; t++)
        {
            for (var d = 0; d < 8; d++)
            {
                Assert.AreEqual(0.0, output[shape.Index(0, t, 0, d)]);
                Assert.AreEqual(0.0, dq[shape.Index(0, t, 0, d)]);
            }
        }

        Assert.IsFalse(output.Concat(dq).Concat(dk).Concat(dv).Any(double.IsNaN));
    }

    [TestMethod]
    [DataRow("all")]
    [DataRow("local")]
    [DataRow("fixed")]
    public void AnalyticGradientsMatchCentralFiniteDifferences(string mode)
    {
        var random = TestData.NewRandom(mode);
        var shape = new AttentionShape(1, 64, 4, 4);
        var mask = LayoutTests.Pattern(mode).ToTokenMask(shape.Ctx, 16, shape.Heads);
        if (mode == "local")
        {
            mask = AttentionPattern.Local(16).ToTokenMask(shape.Ctx, 16, shape.Heads);
        }

        double[][] inputs = [Random(random, shape), Random(random, shape), Random(random, shape)];
        var outputGrad = Random(random, shape);
        var (dq, dk, dv) = DenseReference.Backward(inputs[0], inputs[1], inputs[2], outputGrad, shape, mask);
        double[][] analytic = [dq, dk, dv];
        const double h = 1e-5;
        for (var which = 0; which < 3; which++)
        {
            for (var probe = 0; probe < 12; probe++)
            {
                var index = random.Next(inputs[which].Length);
                var saved = inputs[which][index];
                inputs[which][index] = saved + h;
                var plus = Dot(DenseReference.Forward(inputs[0], inputs[1], inputs[2], shape, mask), outputGrad);
                inputs[which][index] = saved - h;
                var minus = Dot(DenseReference.Forward(inputs[0], inputs[1], inputs[2], shape, mask), outputGrad);
                inputs[which][index] = saved;
                var numeric = (plus - minus) / (2 * h);
                Assert.AreEqual(numeric, analytic[which][index], 1e-7 + 1e-6 * Math.Abs(numeric), $"input {which} element {index}");
            }
        }
    }

    [TestMethod]
    public void AutoregressAtKeyOnlyRemovesElementsOfABidirectionalMask()
    {
        TokenMask both = (_, _, _) => true;
        var restricted = both.AutoregressAtKey(10, 32);
        Assert.IsTrue(restricted(0, 3, 9), "k < p");
        Assert.IsFalse(restricted(0, 3, 12), "k >= p and k > q");
        Assert.IsTrue(restricted(0, 20, 12), "k <= q");
    }

    [TestMethod]
    public void StridedTranspositionRoundTrips()
    {
        var random = TestData.NewRandom("transpose");
        const int batch = 2, ctx = 96, embedding = 5, stride = 8;
        var x = Enumerable.Range(0, batch * ctx * embedding).Select(_ => random.NextDouble()).ToArray();
        var transposed = StridedTransposition.Transpose<double>(x, batch, ctx, embedding, stride);
        CollectionAssert.AreEqual(x, StridedTransposition.Untranspose<double>(transposed, batch, ctx, embedding, stride));
        // Token t = a * L + b lands at b * (ctx / L) + a: token 8 * 3 + 5 = 29 goes to 5 * 12 + 3 = 63.
        Assert.AreEqual(x[(ctx + 29) * embedding + 2], transposed[(ctx + 63) * embedding + 2]);
        CollectionAssert.AreNotEqual(x, transposed);
    }

    internal static double[] Random(Random random, AttentionShape shape) =>
        Enumerable.Range(0, (int)shape.Elements).Select(_ => random.NextDouble() * 2 - 1).ToArray();

    private static double Dot(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum();

    private static void AssertSameMask(int ctx, int heads, TokenMask expected, TokenMask actual, string what)
    {
        for (var h = 0; h < heads; h++)
        {
            for (var q = 0; q < ctx; q++)
            {
                for (var k = 0; k < ctx; k++)
                {
                    if (expected(h, q, k) != actual(h, q, k))
                    {
                        Assert.Fail($"{what}: head {h} ({q}, {k}) differs");
                    }
                }
            }
        }
    }

    // Independent of DenseReference: full score matrix, -inf fill, then softmax (zeros for an empty row).
    private static double[] NaiveAttention(double[] q, double[] k, double[] v, AttentionShape s, TokenMask mask, double scale)
    {
        var output = new double[s.Elements];
        for (var n = 0; n < s.Batch; n++)
        {
            for (var h = 0; h < s.Heads; h++)
            {
                var scores = new double[s.Ctx, s.Ctx];
                for (var i = 0; i < s.Ctx; i++)
                {
                    for (var j = 0; j < s.Ctx; j++)
                    {
                        scores[i, j] = mask(h, i, j)
                            ? Enumerable.Range(0, s.HeadDim).Sum(d => q[s.Index(n, i, h, d)] * k[s.Index(n, j, h, d)]) * scale
                            : double.NegativeInfinity;
                    }

                    var max = Enumerable.Range(0, s.Ctx).Max(j => scores[i, j]);
                    var weights = Enumerable.Range(0, s.Ctx).Select(j => double.IsNegativeInfinity(scores[i, j]) ? 0 : Math.Exp(scores[i, j] - max)).ToArray();
                    var sum = weights.Sum();
                    for (var d = 0; d < s.HeadDim; d++)
                    {
                        output[s.Index(n, i, h, d)] = sum == 0 ? 0 : Enumerable.Range(0, s.Ctx).Sum(j => weights[j] * v[s.Index(n, j, h, d)]) / sum;
                    }
                }
            }
        }

        return output;
    }
}
