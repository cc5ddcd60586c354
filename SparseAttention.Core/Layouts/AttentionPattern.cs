using SparseAttention.Caching;

namespace SparseAttention.Layouts;

/// <summary>One built-in attention pattern with its parameters; turns into a block layout or a dense token mask.</summary>
/// <param name="Kind">Which pattern.</param>
/// <param name="AttentionLength">The original's <c>local_attn_ctx</c>: band width (local), stride (strided) or period (fixed).</param>
/// <param name="NumVerts">Fixed only: how many different vertical column sets the heads cycle through.</param>
/// <param name="VertSize">Fixed only: how many summary block columns each set has per period.</param>
public sealed record AttentionPattern(PatternKind Kind, int AttentionLength = 0, int NumVerts = 1, int VertSize = 1)
{
    /// <summary>Dense causal attention.</summary>
    public static AttentionPattern All { get; } = new(PatternKind.All);

    /// <summary>Causal band of the last <paramref name="length"/> positions.</summary>
    public static AttentionPattern Local(int length) => new(PatternKind.Local, length);

    /// <summary>Every <paramref name="stride"/>-th position back.</summary>
    public static AttentionPattern Strided(int stride) => new(PatternKind.Strided, stride);

    /// <summary>The fixed pattern with period <paramref name="length"/>.</summary>
    public static AttentionPattern Fixed(int length, int numVerts, int vertSize) => new(PatternKind.Fixed, length, numVerts, vertSize);

    /// <summary>A short name such as <c>local(32)</c> for tables and logs.</summary>
    public override string ToString() => Kind switch
    {
        PatternKind.All => "all",
        PatternKind.Local => $"local({AttentionLength})",
        PatternKind.Strided => $"strided({AttentionLength})",
        PatternKind.Fixed => $"fixed({AttentionLength},{NumVerts},{VertSize})",

        // ToString must not throw (it runs in debuggers and logs); the layout and mask reject the kind instead.
        _ => $"kind {(int)Kind}",
    };

    /// <summary>
    /// The most layouts kept by <see cref="ToLayout"/>, one per (pattern, ctx, block size, heads), default 64; past it
    /// the least recently used are dropped and rebuilt when asked for again. The most recent one always stays.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public static int LayoutCacheCapacity
    {
        get => (int)Layouts.Capacity;
        set => Layouts.Capacity = value;
    }

    /// <summary>The block layout of this pattern (docs/semantics.md §3); for strided, in transposed token order.</summary>
    /// <exception cref="ArgumentException">A parameter breaks the pattern's rules.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="Kind"/> is not a named <see cref="PatternKind"/>.</exception>
    /// <remarks>
    /// Layouts are kept per (pattern, ctx, block size, heads), up to <see cref="LayoutCacheCapacity"/>: a per-head
    /// 'fixed' layout at ctx 16k took 20 ms to build, longer than the attention.
    /// </remarks>
    public BlockLayout ToLayout(int ctx, int blockSize, int heads) =>
        Layouts.GetOrAdd((this, ctx, blockSize, heads), key => key.Pattern.BuildLayout(key.Ctx, key.BlockSize, key.Heads));

    private static readonly LruCache<(AttentionPattern Pattern, int Ctx, int BlockSize, int Heads), BlockLayout> Layouts = new(64, _ => 1);

    private BlockLayout BuildLayout(int ctx, int blockSize, int heads) => Kind switch
    {
        PatternKind.All => BlockLayout.All(ctx, blockSize, heads),
        PatternKind.Local => BlockLayout.Local(ctx, blockSize, heads, AttentionLength),
        PatternKind.Strided => BlockLayout.Strided(ctx, blockSize, heads, AttentionLength),
        PatternKind.Fixed => BlockLayout.Fixed(ctx, blockSize, heads, AttentionLength, NumVerts, VertSize),
        _ => throw UnknownKind(),
    };

    /// <summary>The dense token mask of this pattern in natural token order (docs/semantics.md §2).</summary>
    /// <remarks><paramref name="blockSize"/> matters only for <see cref="PatternKind.Fixed"/>, whose mask is defined by its layout.</remarks>
    /// <exception cref="ArgumentException">A parameter breaks the pattern's rules.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="Kind"/> is not a named <see cref="PatternKind"/>.</exception>
    public TokenMask ToTokenMask(int ctx, int blockSize, int heads)
    {
        var length = AttentionLength;
        switch (Kind)
        {
            case PatternKind.All:
                return (_, q, k) => k <= q;
            case PatternKind.Local:
                Guard.Positive(length, nameof(AttentionLength));
                return (_, q, k) => k <= q && q - k < length;
            case PatternKind.Strided:
                Guard.Positive(length, nameof(AttentionLength));
                return (_, q, k) => k <= q && (q - k) % length == 0;
            case PatternKind.Fixed:
                return ToLayout(ctx, blockSize, heads).IsAllowed;
            default:
                throw UnknownKind();
        }
    }

    private ArgumentOutOfRangeException UnknownKind() =>
        new(nameof(Kind), Kind, $"pattern kind {(int)Kind} is not one of {string.Join(", ", Enum.GetNames<PatternKind>())}");
}
