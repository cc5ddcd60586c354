namespace SparseAttention.Reference;

/// <summary>
/// The token permutation of strided attention (docs/semantics.md §9): with <c>bT = ctx / L</c>, token
/// <c>t = a * L + b</c> moves to <c>t' = b * bT + a</c>, so tokens <c>L</c> apart become neighbours.
/// </summary>
public static class StridedTransposition
{
    /// <summary>Where token <paramref name="token"/> lands after the transposition.</summary>
    public static int Forward(int token, int ctx, int stride) => (token % stride) * (ctx / stride) + token / stride;

    /// <summary>Where transposed token <paramref name="token"/> came from.</summary>
    public static int Inverse(int token, int ctx, int stride) => Forward(token, ctx, ctx / stride);

    /// <summary>Permutes the tokens of <c>[batch, ctx, embedding]</c> data into transposed order.</summary>
    /// <exception cref="ArgumentException">ctx is not a multiple of stride, or the length does not match.</exception>
    public static T[] Transpose<T>(ReadOnlySpan<T> x, int batch, int ctx, int embedding, int stride) => Permute(x, batch, ctx, embedding, stride, inverse: false);

    /// <summary>Undoes <see cref="Transpose{T}"/>.</summary>
    /// <exception cref="ArgumentException">ctx is not a multiple of stride, or the length does not match.</exception>
    public static T[] Untranspose<T>(ReadOnlySpan<T> x, int batch, int ctx, int embedding, int stride) => Permute(x, batch, ctx, embedding, stride, inverse: true);

    private static T[] Permute<T>(ReadOnlySpan<T> x, int batch, int ctx, int embedding, int stride, bool inverse)
    {
        Guard.Positive(stride, nameof(stride));
        Guard.MultipleOf(ctx, nameof(ctx), stride, nameof(stride));
        Guard.Length(x.Length, (long)batch * ctx * embedding, nameof(x));
        var result = new T[x.Length];
        for (var n = 0; n < batch; n++)
        {
            for (var t = 0; t < ctx; t++)
            {
                var target = inverse ? Inverse(t, ctx, stride) : Forward(t, ctx, stride);
                x.Slice((n * ctx + t) * embedding, embedding).CopyTo(result.AsSpan((n * ctx + target) * embedding, embedding));
            }
        }

        return result;
    }
}
