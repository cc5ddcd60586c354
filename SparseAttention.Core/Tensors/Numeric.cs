namespace SparseAttention.Tensors;

/// <summary>Host-side conversions between the supported element types and double, for references and tests.</summary>
public static class Numeric
{
    /// <summary>Whether <typeparamref name="T"/> is fp32, <see cref="System.Half"/> or <see cref="BFloat16"/>.</summary>
    public static bool IsSupported<T>() => typeof(T) == typeof(float) || typeof(T) == typeof(Half) || typeof(T) == typeof(BFloat16);

    /// <summary>Widens one element to double.</summary>
    public static double ToDouble<T>(T value) => value switch
    {
        float f => f,
        Half h => (double)h,
        BFloat16 b => (float)b,
        _ => throw new NotSupportedException($"element type {typeof(T).Name} is not supported: use float, Half or BFloat16"),
    };

    /// <summary>Rounds a double to the element type.</summary>
    public static T FromDouble<T>(double value)
    {
        if (typeof(T) == typeof(float))
        {
            return (T)(object)(float)value;
        }

        if (typeof(T) == typeof(Half))
        {
            return (T)(object)(Half)value;
        }

        if (typeof(T) == typeof(BFloat16))
        {
            return (T)(object)(BFloat16)(float)value;
        }

        throw new NotSupportedException($"element type {typeof(T).Name} is not supported: use float, Half or BFloat16");
    }

    /// <summary>Widens a span to a new double array.</summary>
    public static double[] ToDouble<T>(ReadOnlySpan<T> values)
    {
        var result = new double[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            result[i] = ToDouble(values[i]);
        }

        return result;
    }

    /// <summary>Rounds every double to the element type.</summary>
    public static T[] FromDouble<T>(ReadOnlySpan<double> values)
    {
        var result = new T[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            result[i] = FromDouble<T>(values[i]);
        }

        return result;
    }
}
