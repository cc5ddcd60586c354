using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>Fresh random inputs for every run, with the seed printed so a failure can be replayed.</summary>
internal static class TestData
{
    /// <summary>A new generator; the seed is printed to the test output.</summary>
    public static Random NewRandom(string what)
    {
        var seed = Environment.GetEnvironmentVariable("SPARSE_ATTENTION_SEED") is { } fixedSeed ? int.Parse(fixedSeed, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next();
        Console.WriteLine($"{what}: seed {seed}");
        return new Random(seed);
    }

    /// <summary>Normal-ish values in the element type, and their exact double values.</summary>
    public static (T[] Values, double[] Exact) Values<T>(Random random, long count, double scale = 1.0)
    {
        var values = new T[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = Numeric.FromDouble<T>((random.NextDouble() * 2 - 1) * scale);
        }

        return (values, Numeric.ToDouble<T>(values));
    }

    /// <summary>The value kernels' outputs are filled with before they run, so unwritten elements show.</summary>
    public static T Poison<T>() => Numeric.FromDouble<T>(double.NaN);
}
