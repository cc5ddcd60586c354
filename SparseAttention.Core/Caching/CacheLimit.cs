namespace SparseAttention.Caching;

/// <summary>A cache's size limit, read and set from any thread while the cache works under its own lock; never negative.</summary>
/// <param name="initial">The first limit.</param>
internal sealed class CacheLimit(long initial)
{
    private long limit = Checked(initial);

    /// <summary>The limit.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public long Value
    {
        get => Interlocked.Read(ref limit);
        set => Interlocked.Exchange(ref limit, Checked(value));
    }

    private static long Checked(long value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        return value;
    }
}
