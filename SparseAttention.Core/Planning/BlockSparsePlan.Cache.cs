using System.Runtime.CompilerServices;
using SparseAttention.Caching;
using SparseAttention.Layouts;

namespace SparseAttention.Planning;

/// <summary>Building plans, cached by their content (blocks and bit masks), never by a delegate's identity.</summary>
public sealed partial class BlockSparsePlan : IEquatable<BlockSparsePlan>
{
    private static readonly LruCache<BlockSparsePlan, BlockSparsePlan> Cache = new(64, _ => 1);
    private static readonly LruCache<string, BlockSparsePlan> ByPattern = new(64, _ => 1);
    private static readonly ConditionalWeakTable<BlockLayout, BlockSparsePlan> ByLayout = new();
    private int? hash;

    /// <summary>
    /// The most plans kept by pattern (one per built-in pattern, ctx, block size and heads) and, separately, the most kept
    /// by content for sharing equal plans; default 64 each. Past it the least recently used are dropped (the most recent
    /// always stays); a custom layout's plan lives as long as the layout.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public static int CacheCapacity
    {
        get => (int)ByPattern.Capacity;
        set
        {
            ByPattern.Capacity = value;
            Cache.Capacity = value;
        }
    }

    /// <summary>The plan of <paramref name="layout"/>; an equal plan built earlier is returned instead of a new one.</summary>
    /// <remarks>
    /// Evaluating element masks is the slow part (one predicate call per element of every enabled block), so a
    /// built-in pattern's plan is built once per (pattern, ctx, block, heads) while it stays among the
    /// <see cref="CacheCapacity"/> most recently used, and a custom layout's once per instance.
    /// </remarks>
    public static BlockSparsePlan For(BlockLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (layout.PatternKey is { } key)
        {
            return ByPattern.GetOrAdd(key, _ => Build(layout));
        }

        return ByLayout.GetValue(layout, Build);
    }

    /// <summary>Content equality: sizes, heads, blocks and every mask bit.</summary>
    public bool Equals(BlockSparsePlan? other) =>
        ReferenceEquals(this, other) || (other is not null
        && BlockSize == other.BlockSize && BlockCount == other.BlockCount && Heads == other.Heads
        && LayoutHeads == other.LayoutHeads && BlocksPerHead == other.BlocksPerHead
        && blockRows.AsSpan().SequenceEqual(other.blockRows) && blockColumns.AsSpan().SequenceEqual(other.blockColumns)
        && masks.AsSpan().SequenceEqual(other.masks));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as BlockSparsePlan);

    /// <inheritdoc/>
    public override int GetHashCode() => hash ??= ContentHash();

    private static BlockSparsePlan Build(BlockLayout layout)
    {
        var plan = new BlockSparsePlan(layout);
        return Cache.GetOrAdd(plan, built => built);
    }

    private int ContentHash()
    {
        var hash = new HashCode();
        hash.Add(BlockSize);
        hash.Add(BlockCount);
        hash.Add(Heads);
        hash.Add(LayoutHeads);
        hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(blockColumns.AsSpan()));
        hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(masks.AsSpan()));
        return hash.ToHashCode();
    }
}
