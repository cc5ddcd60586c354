using System.Diagnostics.CodeAnalysis;

namespace SparseAttention;

/// <summary>Throw helpers so every guard clause reads as one line and names its parameter and rule.</summary>
internal static class Guard
{
    /// <summary>Throws an <see cref="ArgumentException"/> naming the parameter and the broken rule.</summary>
    [DoesNotReturn]
    public static void Throw(string paramName, string rule) => throw new ArgumentException(rule, paramName);

    /// <summary>Requires a strictly positive value.</summary>
    public static void Positive(int value, string paramName)
    {
        if (value <= 0)
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"{paramName} {value} must be positive");
        }
    }

    /// <summary>Requires <paramref name="value"/> to be a multiple of <paramref name="divisor"/>.</summary>
    public static void MultipleOf(int value, string paramName, int divisor, string divisorName)
    {
        if (divisor <= 0 || value % divisor != 0)
        {
            Throw(paramName, $"{paramName} {value} is not a multiple of {divisorName} {divisor}");
        }
    }

    /// <summary>Requires one of the supported block sizes (16, 32, 64, 128).</summary>
    public static void BlockSize(int blockSize, string paramName = "blockSize")
    {
        if (blockSize is not (16 or 32 or 64 or 128))
        {
            Throw(paramName, $"{paramName} {blockSize} is not supported: use 16, 32, 64 or 128");
        }
    }

    /// <summary>Requires a buffer length to equal what the shape implies.</summary>
    public static void Length(long actual, long expected, string paramName)
    {
        if (actual != expected)
        {
            Throw(paramName, $"{paramName} has {actual} elements but the shape needs {expected}");
        }
    }
}
