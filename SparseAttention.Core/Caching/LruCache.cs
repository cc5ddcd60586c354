namespace SparseAttention.Caching;

/// <summary>
/// A thread-safe map whose entries' total weight stays within <see cref="Capacity"/>: adding past it drops the least
/// recently used entries first. The most recently used entry always stays, so a caller can use what it just asked for
/// even when that alone outweighs the capacity.
/// </summary>
/// <remarks>
/// Values are created outside the lock, so a slow creation (a plan at long ctx takes seconds) holds up no other key;
/// when callers race on one key, the first to finish wins and the others' values are dropped like evicted ones.
/// Dropped values go to <c>dropped</c> after the lock is released.
/// </remarks>
internal sealed class LruCache<TKey, TValue>(long capacity, Func<TValue, long> weigh, Action<TValue>? dropped = null)
    where TKey : notnull
{
    private readonly Lock gate = new();
    private readonly Dictionary<TKey, LinkedListNode<(TKey Key, TValue Value)>> index = [];

    // Least recently used first.
    private readonly LinkedList<(TKey Key, TValue Value)> order = [];
    private readonly CacheLimit limit = new(capacity);
    private long weight;

    /// <summary>The most total weight kept.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public long Capacity
    {
        get => limit.Value;
        set
        {
            limit.Value = value;
            List<TValue> removed;
            lock (gate)
            {
                removed = Trim();
            }

            Notify(removed);
        }
    }

    /// <summary>Total weight of the entries kept.</summary>
    public long Weight
    {
        get
        {
            lock (gate)
            {
                return weight;
            }
        }
    }

    /// <summary>The value of <paramref name="key"/>, created by <paramref name="create"/> when absent; either way now the most recently used.</summary>
    public TValue GetOrAdd(TKey key, Func<TKey, TValue> create)
    {
        lock (gate)
        {
            if (TryUse(key, out var kept))
            {
                return kept;
            }
        }

        var created = create(key);
        List<TValue> removed;
        TValue value;
        lock (gate)
        {
            if (TryUse(key, out value))
            {
                removed = [created];
            }
            else
            {
                value = created;
                index.Add(key, order.AddLast((key, value)));
                weight += weigh(value);
                removed = Trim();
            }
        }

        Notify(removed);
        return value;
    }

    /// <summary>Drops every entry.</summary>
    public void Clear()
    {
        List<TValue> removed;
        lock (gate)
        {
            removed = [.. order.Select(entry => entry.Value)];
            index.Clear();
            order.Clear();
            weight = 0;
        }

        Notify(removed);
    }

    private bool TryUse(TKey key, out TValue value)
    {
        if (!index.TryGetValue(key, out var node))
        {
            value = default!;
            return false;
        }

        order.Remove(node);
        order.AddLast(node);
        value = node.Value.Value;
        return true;
    }

    private List<TValue> Trim()
    {
        var removed = new List<TValue>();
        while (weight > limit.Value && order.First != order.Last)
        {
            var (key, value) = order.First!.Value;
            order.RemoveFirst();
            index.Remove(key);
            weight -= weigh(value);
            removed.Add(value);
        }

        return removed;
    }

    private void Notify(List<TValue> removed)
    {
        if (dropped is not null)
        {
            removed.ForEach(dropped);
        }
    }
}
