using ILGPU.Runtime;

namespace SparseAttention.Caching;

/// <summary>
/// Released device buffers kept for reuse, by element type and length, within <see cref="Capacity"/> bytes: adding
/// past it drops the buffers released longest ago (the new one too, when it alone is larger). Thread-safe.
/// </summary>
/// <param name="capacity">The most bytes kept.</param>
/// <param name="dropped">Frees the buffers the pool no longer keeps, all those of one call together; called after the lock is released.</param>
internal sealed class BufferPool(long capacity, Action<IReadOnlyCollection<MemoryBuffer>> dropped)
{
    private readonly Lock gate = new();

    // Release order, oldest first. Each key's queue holds its nodes in the same order, so the oldest node overall is
    // the head of its own queue, and a reuse takes the head too.
    private readonly LinkedList<(Key Key, MemoryBuffer Buffer)> order = [];
    private readonly Dictionary<Key, Queue<LinkedListNode<(Key Key, MemoryBuffer Buffer)>>> byKey = [];
    private readonly CacheLimit limit = new(capacity);
    private long bytes;

    /// <summary>The most bytes kept.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public long Capacity
    {
        get => limit.Value;
        set
        {
            limit.Value = value;
            List<MemoryBuffer> removed;
            lock (gate)
            {
                removed = Trim();
            }

            dropped(removed);
        }
    }

    /// <summary>Bytes of the buffers kept.</summary>
    public long Bytes
    {
        get
        {
            lock (gate)
            {
                return bytes;
            }
        }
    }

    /// <summary>A kept buffer of <paramref name="length"/> elements of <paramref name="element"/>, or null.</summary>
    public MemoryBuffer? Take(Type element, long length)
    {
        lock (gate)
        {
            if (!byKey.TryGetValue(new(element, length), out var nodes))
            {
                return null;
            }

            var head = nodes.Peek();
            Unlink(head);
            return head.Value.Buffer;
        }
    }

    /// <summary>Keeps <paramref name="buffer"/> of elements of <paramref name="element"/>, dropping the oldest past the capacity.</summary>
    public void Add(Type element, MemoryBuffer buffer)
    {
        List<MemoryBuffer> removed;
        lock (gate)
        {
            var key = new Key(element, buffer.Length);
            if (!byKey.TryGetValue(key, out var nodes))
            {
                byKey.Add(key, nodes = new());
            }

            nodes.Enqueue(order.AddLast((key, buffer)));
            bytes += buffer.LengthInBytes;
            removed = Trim();
        }

        dropped(removed);
    }

    /// <summary>Drops every buffer.</summary>
    public void Clear()
    {
        List<MemoryBuffer> removed;
        lock (gate)
        {
            removed = [.. order.Select(entry => entry.Buffer)];
            order.Clear();
            byKey.Clear();
            bytes = 0;
        }

        dropped(removed);
    }

    private List<MemoryBuffer> Trim()
    {
        var removed = new List<MemoryBuffer>();
        while (bytes > limit.Value)
        {
            var oldest = order.First!;
            Unlink(oldest);
            removed.Add(oldest.Value.Buffer);
        }

        return removed;
    }

    // Takes out the head of its key's queue; an emptied queue goes too, else a loop over many lengths would keep one
    // per length ever seen.
    private void Unlink(LinkedListNode<(Key Key, MemoryBuffer Buffer)> head)
    {
        var nodes = byKey[head.Value.Key];
        nodes.Dequeue();
        if (nodes.Count == 0)
        {
            byKey.Remove(head.Value.Key);
        }

        order.Remove(head);
        bytes -= head.Value.Buffer.LengthInBytes;
    }

    private readonly record struct Key(Type Element, long Length);
}
