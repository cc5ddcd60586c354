using SparseAttention.Kernels.Common;

namespace SparseAttention;

/// <summary>Shape of <c>q</c>, <c>k</c>, <c>v</c> and the output: <c>[Batch, Ctx, Heads * HeadDim]</c>, row-major.</summary>
/// <param name="Batch">Sequences in the batch.</param>
/// <param name="Ctx">Tokens per sequence.</param>
/// <param name="Heads">Attention heads.</param>
/// <param name="HeadDim">Features per head.</param>
public readonly record struct AttentionShape(int Batch, int Ctx, int Heads, int HeadDim)
{
    /// <summary>Features per token: <c>Heads * HeadDim</c>.</summary>
    public int Embedding => Heads * HeadDim;

    /// <summary>Elements of one tensor of this shape.</summary>
    public long Elements => (long)Batch * Ctx * Embedding;

    /// <summary>Flat index of element (n, t, h, d): heads are split by indexing, not copying (the kernels' own formula).</summary>
    public long Index(int n, int t, int h, int d) => ToDims().Index(n, t, h, d);

    /// <summary>The same sizes as the kernels take them.</summary>
    internal Dims ToDims() => new() { Batch = Batch, Ctx = Ctx, Heads = Heads, HeadDim = HeadDim };

    /// <summary>Checks every dimension is positive.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is zero or negative.</exception>
    public void Validate()
    {
        Guard.Positive(Batch, nameof(Batch));
        Guard.Positive(Ctx, nameof(Ctx));
        Guard.Positive(Heads, nameof(Heads));
        Guard.Positive(HeadDim, nameof(HeadDim));
    }

    /// <summary>The shape of an embedding-split tensor: <paramref name="embedding"/> must divide by <paramref name="heads"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="embedding"/> is not a multiple of <paramref name="heads"/>.</exception>
    public static AttentionShape FromEmbedding(int batch, int ctx, int embedding, int heads)
    {
        Guard.Positive(heads, nameof(heads));
        Guard.MultipleOf(embedding, nameof(embedding), heads, nameof(heads));
        var shape = new AttentionShape(batch, ctx, heads, embedding / heads);
        shape.Validate();
        return shape;
    }
}
