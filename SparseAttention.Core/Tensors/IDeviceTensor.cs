using SparseAttention.Accelerators;

namespace SparseAttention.Tensors;

/// <summary>A <see cref="DeviceTensor{T}"/> of any element type, so one tape can hold ops of several.</summary>
public interface IDeviceTensor : IDisposable
{
    /// <summary>The device the data lives on.</summary>
    ComputeDevice Device { get; }

    /// <summary>Dimensions, outermost first.</summary>
    IReadOnlyList<int> Shape { get; }

    /// <summary>Bytes of the data.</summary>
    long SizeInBytes { get; }

    /// <summary>The element type.</summary>
    Type ElementType { get; }

    /// <summary>Whether a backward pass computes this tensor's gradient.</summary>
    bool RequiresGrad { get; }

    /// <summary>Whether the caller disposed it (a tape may still keep it).</summary>
    internal bool ReleasedByCaller { get; }

    /// <summary>Whether the caller or a tape still holds it (an evicted one too: the tape restores it).</summary>
    internal bool IsHeld { get; }

    /// <summary>Whether its buffer is the tensor's own and so may be evicted and restored.</summary>
    internal bool CanEvict { get; }

    /// <summary>Keeps the buffer alive for a tape until <see cref="Release"/>.</summary>
    internal void Retain();

    /// <summary>Undoes one <see cref="Retain"/>.</summary>
    internal void Release();

    /// <summary>Frees the buffer now while the tensor stays on the tape; <see cref="ShareFrom"/> restores it.</summary>
    internal void Evict();

    /// <summary>Takes the data of <paramref name="recomputed"/>, bit-identical to what was evicted, by sharing its buffer.</summary>
    internal void ShareFrom(IDeviceTensor recomputed);

    /// <summary><c>this += addend</c>, element-wise.</summary>
    internal void AddInPlace(IDeviceTensor addend);
}
