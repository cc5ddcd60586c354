using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Accelerators;

namespace SparseAttention.Tensors;

/// <summary>
/// A dense row-major tensor on a <see cref="ComputeDevice"/>: fp32, <see cref="System.Half"/> or <see cref="BFloat16"/>.
/// Owns its buffer, or borrows a caller's ILGPU view without copying. A <see cref="Autograd.Tape"/> that needs the
/// tensor for backward keeps its buffer alive after the caller disposes it, like a reference PyTorch's autograd holds.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed partial class DeviceTensor<T> : IDeviceTensor
    where T : unmanaged
{
    private readonly int[] shape;
    private readonly bool ownsBuffer;
    private Storage? storage;
    private ArrayView1D<T, Stride1D.Dense> viewValue;

    private DeviceTensor(ComputeDevice device, ArrayView1D<T, Stride1D.Dense> view, MemoryBuffer1D<T, Stride1D.Dense>? owned, int[] shape)
    {
        if (!Numeric.IsSupported<T>())
        {
            Guard.Throw(nameof(T), $"element type {typeof(T).Name} is not supported: use float, Half or BFloat16");
        }

        Device = device;
        ownsBuffer = owned is not null;
        storage = owned is null ? null : new Storage(owned);
        this.shape = shape;
        viewValue = view;
    }

    /// <summary>The device the data lives on.</summary>
    public ComputeDevice Device { get; }

    /// <summary>Dimensions, outermost first.</summary>
    public IReadOnlyList<int> Shape => shape;

    /// <summary>Number of elements.</summary>
    public long Length => viewValue.Length;

    /// <summary>Whether the buffer belongs to this tensor (false when it wraps a caller's view).</summary>
    public bool OwnsBuffer => ownsBuffer;

    /// <summary>Bytes of the data.</summary>
    public long SizeInBytes => Length * Unsafe.SizeOf<T>();

    /// <summary>The element type.</summary>
    public Type ElementType => typeof(T);

    /// <summary>Whether a backward pass computes this tensor's gradient (default true); false for data such as token inputs.</summary>
    public bool RequiresGrad { get; set; } = true;

    /// <summary>The data as an ILGPU view, for kernels of the caller's own.</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed and no tape keeps it.</exception>
    public ArrayView1D<T, Stride1D.Dense> View
    {
        get
        {
            ThrowIfUnreadable();
            return viewValue;
        }
    }

    /// <summary>A new tensor of the given shape; its contents are unspecified until written.</summary>
    public static DeviceTensor<T> Allocate(ComputeDevice device, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(device);
        var length = CheckShape(shape);
        var buffer = device.Allocate<T>(Math.Max(length, 1));
        return new DeviceTensor<T>(device, buffer.View.SubView(0, length), buffer, (int[])shape.Clone());
    }

    /// <summary>A new tensor holding a copy of <paramref name="data"/>.</summary>
    /// <exception cref="ArgumentException">The data's length does not match the shape.</exception>
    public static DeviceTensor<T> FromSpan(ComputeDevice device, ReadOnlySpan<T> data, params int[] shape)
    {
        var length = CheckShape(shape);
        Guard.Length(data.Length, length, nameof(data));
        var tensor = Allocate(device, shape);
        tensor.CopyFrom(data);
        return tensor;
    }

    /// <summary>A new tensor holding a copy of a <see cref="Tensor{T}"/>, with its shape.</summary>
    public static DeviceTensor<T> FromTensor(ComputeDevice device, Tensor<T> tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var shape = tensor.Lengths.ToArray().Select(l => checked((int)l)).ToArray();
        var data = new T[tensor.FlattenedLength];
        tensor.FlattenTo(data);
        return FromSpan(device, data, shape);
    }

    /// <summary>Wraps an existing device view without copying; the caller keeps ownership.</summary>
    /// <exception cref="ArgumentException">The view's length does not match the shape.</exception>
    public static DeviceTensor<T> Wrap(ComputeDevice device, ArrayView1D<T, Stride1D.Dense> view, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(device);
        Guard.Length(view.Length, CheckShape(shape), nameof(view));
        return new DeviceTensor<T>(device, view, null, (int[])shape.Clone());
    }

    /// <summary>Overwrites the whole tensor from host memory.</summary>
    /// <exception cref="ArgumentException">The length differs.</exception>
    public void CopyFrom(ReadOnlySpan<T> data)
    {
        Guard.Length(data.Length, Length, nameof(data));
        if (Length > 0)
        {
            View.CopyFromCPU(data.ToArray());
        }
    }

    /// <summary>Copies the whole tensor into host memory.</summary>
    /// <exception cref="ArgumentException">The destination is too short.</exception>
    public void CopyTo(Span<T> destination)
    {
        if (destination.Length < Length)
        {
            Guard.Throw(nameof(destination), $"destination has {destination.Length} elements but the tensor has {Length}");
        }

        ToArray().CopyTo(destination);
    }

    /// <summary>A host copy of the data.</summary>
    public T[] ToArray()
    {
        var data = new T[Length];
        if (Length > 0)
        {
            View.CopyToCPU(data);
        }

        return data;
    }

    /// <summary>A host <see cref="Tensor{T}"/> copy with this shape.</summary>
    public Tensor<T> ToTensor() => Tensor.Create(ToArray(), shape.Select(s => (nint)s).ToArray());

    /// <summary>Fills every element with <paramref name="value"/> (used to poison outputs in tests).</summary>
    public void Fill(T value)
    {
        var data = new T[Length];
        Array.Fill(data, value);
        CopyFrom(data);
    }

    /// <summary>Gives an owned buffer back to its device for reuse once no tape needs it; a borrowed view is left alone.</summary>
    public void Dispose()
    {
        if (!callerReleased)
        {
            callerReleased = true;
            Drop();
        }
    }

    /// <summary>Whether the shape equals <paramref name="expected"/>.</summary>
    internal bool HasShape(params int[] expected) => shape.AsSpan().SequenceEqual(expected);

    private static long CheckShape(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length == 0 || shape.Any(s => s < 0))
        {
            Guard.Throw(nameof(shape), $"shape [{string.Join(", ", shape)}] must have at least one dimension and no negative size");
        }

        return shape.Aggregate(1L, (a, s) => a * s);
    }
}
