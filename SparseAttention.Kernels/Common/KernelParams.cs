using ILGPU;

namespace SparseAttention.Kernels.Common;

/// <summary>A block-sparse plan's tables on the device, as the kernels read them (encoding: <c>BlockSparsePlan</c>).</summary>
public readonly struct PlanTables
{
    /// <summary>Block row of each block, per layout head.</summary>
    public ArrayView<int> BlockRows { get; init; }

    /// <summary>Block column of each block, per layout head.</summary>
    public ArrayView<int> BlockColumns { get; init; }

    /// <summary>CSR offsets of each block row into <see cref="RowBlocks"/>.</summary>
    public ArrayView<int> RowOffsets { get; init; }

    /// <summary>Block numbers of each block row.</summary>
    public ArrayView<int> RowBlocks { get; init; }

    /// <summary>CSR offsets of each block column into <see cref="ColumnBlocks"/>.</summary>
    public ArrayView<int> ColumnOffsets { get; init; }

    /// <summary>Block numbers of each block column.</summary>
    public ArrayView<int> ColumnBlocks { get; init; }

    /// <summary>Element bit masks, <see cref="WordsPerBlock"/> words per block.</summary>
    public ArrayView<uint> Masks { get; init; }

    /// <summary>1 where a block's mask is all ones.</summary>
    public ArrayView<int> BlockIsFull { get; init; }

    /// <summary>Block edge in tokens.</summary>
    public int BlockSize { get; init; }

    /// <summary>Block rows of the layout.</summary>
    public int BlockCount { get; init; }

    /// <summary>Enabled blocks per head.</summary>
    public int BlocksPerHead { get; init; }

    /// <summary>1 when heads share the tables, else the head count.</summary>
    public int LayoutHeads { get; init; }

    /// <summary>Mask words per block.</summary>
    public int WordsPerBlock { get; init; }

    /// <summary>Which layout head serves attention head <paramref name="head"/>.</summary>
    public int LayoutHead(int head) => LayoutHeads == 1 ? 0 : head;
}

/// <summary>Sizes of a <c>[batch, ctx, heads * headDim]</c> problem.</summary>
public readonly struct Dims
{
    /// <summary>Sequences.</summary>
    public int Batch { get; init; }

    /// <summary>Tokens per sequence.</summary>
    public int Ctx { get; init; }

    /// <summary>Heads.</summary>
    public int Heads { get; init; }

    /// <summary>Features per head.</summary>
    public int HeadDim { get; init; }

    /// <summary>Flat index of (n, t, h, d).</summary>
    public long Index(int n, int t, int h, int d) => (((long)n * Ctx + t) * Heads + h) * HeadDim + d;

    /// <summary>Index of row <paramref name="token"/> of (sequence, head) <paramref name="sequenceHead"/> in per-row <c>[batch, heads, ctx]</c> arrays (log-sum-exp, delta).</summary>
    public long RowIndex(int sequenceHead, int token) => (long)sequenceHead * Ctx + token;
}
