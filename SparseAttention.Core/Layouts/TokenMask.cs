namespace SparseAttention.Layouts;

/// <summary>Whether query position <paramref name="query"/> of <paramref name="head"/> may attend to key position <paramref name="key"/>.</summary>
public delegate bool TokenMask(int head, int query, int key);

/// <summary>Combinators on token masks.</summary>
public static class TokenMasks
{
    /// <summary>The original's <c>autoregress_at_key</c>: keeps an allowed element only if <c>k &lt; p || k &lt;= q</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="autoregressAtKey"/> is outside [0, ctx).</exception>
    public static TokenMask AutoregressAtKey(this TokenMask mask, int autoregressAtKey, int ctx)
    {
        CheckAutoregressAtKey(autoregressAtKey, ctx);
        return (h, q, k) => mask(h, q, k) && (k < autoregressAtKey || k <= q);
    }

    /// <summary>Validates an <c>autoregress_at_key</c> value against the context length.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is outside [0, ctx).</exception>
    public static void CheckAutoregressAtKey(int autoregressAtKey, int ctx)
    {
        if (autoregressAtKey < 0 || autoregressAtKey >= ctx)
        {
            throw new ArgumentOutOfRangeException(nameof(autoregressAtKey), autoregressAtKey, $"autoregressAtKey {autoregressAtKey} must be in [0, ctx {ctx})");
        }
    }
}
