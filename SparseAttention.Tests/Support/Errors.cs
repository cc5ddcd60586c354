using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>Error measures and the dtype tolerances of docs/numerics.md §1-4.</summary>
internal static class Errors
{
    /// <summary>‖actual − expected‖ / ‖expected‖ in the Frobenius norm (absolute when the reference is zero); NaN anywhere gives infinity.</summary>
    public static double Relative(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected)
    {
        Assert.AreEqual(expected.Length, actual.Length, "lengths differ");
        double diff = 0, norm = 0;
        for (var i = 0; i < actual.Length; i++)
        {
            if (double.IsNaN(actual[i]) || double.IsInfinity(actual[i]))
            {
                return double.PositiveInfinity;
            }

            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }

        return norm > 0 ? Math.Sqrt(diff / norm) : Math.Sqrt(diff);
    }

    /// <summary>Relative error of <paramref name="actual"/> (any element type) against a float64 reference.</summary>
    public static double RelativeOf<T>(T[] actual, ReadOnlySpan<double> expected) => Relative(Numeric.ToDouble<T>(actual), expected);

    /// <summary>
    /// The bound for an op's output: fp32 1e-5; fp16/bf16 2x (gradients 3x) the error of a naive same-precision
    /// implementation, floored at 1e-3.
    /// </summary>
    public static double Tolerance<T>(double naiveError, bool gradient = false)
    {
        if (typeof(T) == typeof(float))
        {
            return 1e-5;
        }

        return Math.Max((gradient ? 3 : 2) * naiveError, 1e-3);
    }

    /// <summary>The reference rounded to the element type: what a naive implementation that stores in T gets at best.</summary>
    public static double[] RoundTo<T>(ReadOnlySpan<double> values) => Numeric.ToDouble<T>(Numeric.FromDouble<T>(values));

    /// <summary>Asserts the error is within the bound, printing both.</summary>
    public static void AssertWithin(double error, double tolerance, string what)
    {
        Console.WriteLine($"{what}: relative error {error:E3} (tolerance {tolerance:E3})");
        Assert.IsLessThanOrEqualTo(tolerance, error, $"{what}: relative error {error:E3} exceeds {tolerance:E3}");
    }

    /// <summary>
    /// Every element within 4 times the largest element error of the naive same-precision implementation (fp32: within
    /// 1e-5 of the largest reference element), so an error confined to a few rows or keys cannot hide in the norm.
    /// </summary>
    public static void AssertElementwise<T>(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, ReadOnlySpan<double> naive, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, "lengths differ");
        double largest = 0, naiveWorst = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            largest = Math.Max(largest, Math.Abs(expected[i]));
            naiveWorst = Math.Max(naiveWorst, Math.Abs(naive[i] - expected[i]));
        }

        var bound = typeof(T) == typeof(float) ? 1e-5 * largest : 4 * naiveWorst;
        var (worst, at) = (0.0, 0);
        for (var i = 0; i < actual.Length; i++)
        {
            var error = Math.Abs(actual[i] - expected[i]);
            if (!(error <= worst))
            {
                (worst, at) = (double.IsNaN(error) ? double.PositiveInfinity : error, i);
            }
        }

        Console.WriteLine($"{what}: largest element error {worst:E3} at {at} (bound {bound:E3})");
        Assert.IsLessThanOrEqualTo(bound, worst, $"{what}: element {at} is {actual[at]} against {expected[at]}, error {worst:E3} over {bound:E3}");
    }
}
