using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>
/// One attention problem of the test matrix: a shape, what the caller passes (a built-in pattern, a custom layout or a
/// dense token mask), the options apart from the path, and the token mask of the float64 reference.
/// </summary>
internal sealed record AttentionCase(string Name, AttentionShape Shape, TokenMask ReferenceMask, AttentionOptions Options)
{
    /// <summary>A built-in pattern at a block size (strided runs through its transpositions).</summary>
    public AttentionPattern? Pattern { get; init; }

    /// <summary>The block size of <see cref="Pattern"/>.</summary>
    public int BlockSize { get; init; }

    /// <summary>A custom layout.</summary>
    public BlockLayout? Layout { get; init; }

    /// <summary>A token mask for dense attention on the device (autoregressAtKey comes through the options).</summary>
    public TokenMask? DenseMask { get; init; }

    /// <summary>The scale the reference uses: the explicit one, else <c>1 / sqrt(headDim)</c>.</summary>
    public double Scale => Options.Scale ?? 1 / Math.Sqrt(Shape.HeadDim);

    /// <summary>Runs the case's attention call on the path <paramref name="fused"/> names (the portable fused kernels unless the case asks for the Hopper family).</summary>
    public DeviceTensor<T> Run<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, bool fused, Tape tape)
        where T : unmanaged
    {
        var options = Options with { Fused = fused, Hopper = Options.Hopper ?? false };
        if (Pattern is { } pattern)
        {
            return BlockSparseAttention.Compute(q, k, v, Shape.Heads, pattern, BlockSize, options, tape);
        }

        if (Layout is { } layout)
        {
            return BlockSparseAttention.Compute(q, k, v, layout, options, tape);
        }

        return DenseMask is { } mask
            ? BlockSparseAttention.Dense(q, k, v, Shape.Heads, mask, options, tape)
            : throw new InvalidOperationException($"case {Name} names no pattern, layout or dense mask");
    }

    /// <summary>A built-in pattern case; the reference mask is the pattern's own token mask.</summary>
    public static AttentionCase ForPattern(AttentionShape shape, AttentionPattern pattern, int blockSize, AttentionOptions? options = null) =>
        new($"{pattern} block {blockSize}", shape, pattern.ToTokenMask(shape.Ctx, blockSize, shape.Heads), options ?? AttentionOptions.Default)
        {
            Pattern = pattern,
            BlockSize = blockSize,
        };

    /// <summary>A custom layout case; the reference mask is the layout's, trimmed by the options' autoregressAtKey.</summary>
    public static AttentionCase ForLayout(string name, AttentionShape shape, BlockLayout layout, AttentionOptions options) =>
        new(name, shape, Trimmed(layout.IsAllowed, options, shape.Ctx), options) { Layout = layout };

    /// <summary>A dense case; the reference mask is the token mask, trimmed by the options' autoregressAtKey.</summary>
    public static AttentionCase ForDense(string name, AttentionShape shape, TokenMask mask, AttentionOptions options) =>
        new(name, shape, Trimmed(mask, options, shape.Ctx), options) { DenseMask = mask };

    private static TokenMask Trimmed(TokenMask mask, AttentionOptions options, int ctx) =>
        options.AutoregressAtKey is { } key ? mask.AutoregressAtKey(key, ctx) : mask;
}
