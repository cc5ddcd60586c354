namespace SparseAttention.Layouts;

/// <summary>
/// Which key blocks each query block attends to, per head, plus which elements inside an enabled block are allowed.
/// Immutable; the planner turns it into lookup tables and bit masks.
/// </summary>
public sealed partial class BlockLayout
{
    private readonly bool[] enabled;
    private readonly TokenMask? elementPredicate;

    private BlockLayout(int blockSize, int blockCount, int heads, int layoutHeads, bool[] enabled, TokenMask? elementPredicate, string name)
    {
        BlockSize = blockSize;
        BlockCount = blockCount;
        Heads = heads;
        LayoutHeads = layoutHeads;
        this.enabled = enabled;
        this.elementPredicate = elementPredicate;
        Name = name;
        BlocksPerHead = CountAndCheckBlocksPerHead();
    }

    /// <summary>Edge length of a block in tokens.</summary>
    public int BlockSize { get; }

    /// <summary>Number of block rows (and columns): <c>ctx / BlockSize</c>.</summary>
    public int BlockCount { get; }

    /// <summary>Sequence length this layout covers.</summary>
    public int Ctx => BlockCount * BlockSize;

    /// <summary>Number of attention heads the layout serves.</summary>
    public int Heads { get; }

    /// <summary>1 when all heads share one block matrix, else <see cref="Heads"/>.</summary>
    public int LayoutHeads { get; }

    /// <summary>Enabled blocks of each head (the same for every head, as the original requires).</summary>
    public int BlocksPerHead { get; }

    /// <summary>A short description such as <c>local(32)</c> or <c>custom</c>.</summary>
    public string Name { get; }

    /// <summary>Identifies a built-in pattern's layout completely (null for custom layouts), so plans can be cached by it.</summary>
    internal string? PatternKey => Name == "custom" ? null : $"{Name}/{Ctx}/{BlockSize}/{Heads}";

    /// <summary>Whether query block <paramref name="row"/> attends to key block <paramref name="column"/> in <paramref name="head"/>.</summary>
    public bool IsBlockEnabled(int head, int row, int column) =>
        enabled[((LayoutHead(head) * BlockCount) + row) * BlockCount + column];

    /// <summary>Whether token <paramref name="query"/> attends to token <paramref name="key"/>: its block is enabled and the element predicate holds.</summary>
    public bool IsAllowed(int head, int query, int key) =>
        IsBlockEnabled(head, query / BlockSize, key / BlockSize) && (elementPredicate is null || elementPredicate(head, query, key));

    /// <summary>Number of allowed (query, key) pairs of one head.</summary>
    public long AllowedElements(int head)
    {
        long count = 0;
        for (var i = 0; i < BlockCount; i++)
        {
            for (var j = 0; j < BlockCount; j++)
            {
                if (IsBlockEnabled(head, i, j))
                {
                    count += AllowedInBlock(head, i, j);
                }
            }
        }

        return count;
    }

    /// <summary>Number of allowed elements inside block (<paramref name="row"/>, <paramref name="column"/>).</summary>
    internal int AllowedInBlock(int head, int row, int column)
    {
        if (elementPredicate is null)
        {
            return BlockSize * BlockSize;
        }

        var count = 0;
        for (var r = 0; r < BlockSize; r++)
        {
            for (var c = 0; c < BlockSize; c++)
            {
                count += elementPredicate(head, row * BlockSize + r, column * BlockSize + c) ? 1 : 0;
            }
        }

        return count;
    }

    /// <summary>Whether an element of an enabled block is allowed; true for every element when there is no predicate.</summary>
    internal bool IsElementAllowed(int head, int query, int key) => elementPredicate is null || elementPredicate(head, query, key);

    private int LayoutHead(int head) => LayoutHeads == 1 ? 0 : head;

    private int CountAndCheckBlocksPerHead()
    {
        var perBlockMatrix = BlockCount * BlockCount;
        var first = -1;
        for (var h = 0; h < LayoutHeads; h++)
        {
            var count = enabled.AsSpan(h * perBlockMatrix, perBlockMatrix).Count(true);
            if (first >= 0 && count != first)
            {
                Guard.Throw("layout", $"every head must enable the same number of blocks: head 0 has {first}, head {h} has {count}");
            }

            first = count;
        }

        return first;
    }
}
