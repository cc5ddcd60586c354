using System.Collections.Concurrent;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Planning;

namespace SparseAttention.Accelerators;

/// <summary>
/// Owns an ILGPU <see cref="ILGPU.Context"/> and one accelerator: CUDA when present, else the CPU accelerator
/// with 32-lane warps (so kernels written for CUDA warps run unchanged). Also tracks this library's device memory.
/// </summary>
public sealed class ComputeDevice : IDisposable
{
    private readonly Context context;
    private readonly Accelerator accelerator;
    private readonly ConcurrentDictionary<BlockSparsePlan, DevicePlan> plans = new();
    private readonly ConcurrentDictionary<(Type Element, long Length), ConcurrentBag<MemoryBuffer>> cached = new();
    private long allocatedBytes;
    private long peakBytes;
    private bool disposed;

    private ComputeDevice(Context context, Accelerator accelerator)
    {
        this.context = context;
        this.accelerator = accelerator;
    }

    /// <summary>The ILGPU accelerator, for callers that bring their own buffers.</summary>
    /// <exception cref="ObjectDisposedException">The device was disposed.</exception>
    public Accelerator Accelerator
    {
        get
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            return accelerator;
        }
    }

    /// <summary>Whether this is a CUDA GPU (else the CPU accelerator).</summary>
    public bool IsCuda => accelerator.AcceleratorType == AcceleratorType.Cuda;

    /// <summary>A human-readable description such as <c>CUDA: NVIDIA H100 80GB HBM3</c>.</summary>
    public string Name => $"{(IsCuda ? "CUDA" : "CPU")}: {accelerator.Name}";

    /// <summary>Bytes of tensors and plans this library currently holds on the device.</summary>
    public long AllocatedBytes => Interlocked.Read(ref allocatedBytes);

    /// <summary>Most bytes held at once since the last <see cref="ResetPeak"/>.</summary>
    public long PeakBytes => Interlocked.Read(ref peakBytes);

    /// <summary>CUDA if a CUDA device is present, else the CPU accelerator.</summary>
    public static ComputeDevice CreateDefault() => HasCuda() ? CreateCuda() : CreateCpu();

    /// <summary>ILGPU's CPU accelerator, configured like an NVIDIA GPU (warp 32, up to 1024 threads per group).</summary>
    public static ComputeDevice CreateCpu()
    {
        var context = Context.Create(builder => builder.CPU(CPUDeviceKind.Nvidia).EnableAlgorithms());
        return new ComputeDevice(context, context.GetCPUDevice(0).CreateAccelerator(context));
    }

    /// <summary>The CUDA device <paramref name="index"/>.</summary>
    /// <exception cref="InvalidOperationException">No CUDA device with that index exists.</exception>
    public static ComputeDevice CreateCuda(int index = 0)
    {
        // O2 lets ILGPU lower the inline-PTX operand locals so ptxas keeps them in registers: at the default level the
        // tensor-core kernels kept a 56-80 byte local depot whose traffic saturated L2 (measured with ncu on an H100).
        var context = Context.Create(builder => builder.Cuda().EnableAlgorithms().Profiling().Optimize(OptimizationLevel.O2));
        var devices = context.GetCudaDevices();
        if (index < 0 || index >= devices.Count)
        {
            context.Dispose();
            throw new InvalidOperationException($"CUDA device {index} is not present ({devices.Count} found)");
        }

        return new ComputeDevice(context, devices[index].CreateAccelerator(context));
    }

    /// <summary>Whether a CUDA device can be used on this machine.</summary>
    public static bool HasCuda()
    {
        try
        {
            using var probe = Context.Create(builder => builder.Cuda());
            return probe.GetCudaDevices().Count > 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or TypeInitializationException or CudaException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Waits for every queued kernel.</summary>
    public void Synchronize() => Accelerator.Synchronize();

    /// <summary>Starts a new peak-memory measurement from the current allocation.</summary>
    public void ResetPeak() => Interlocked.Exchange(ref peakBytes, AllocatedBytes);

    /// <summary>The device copy of <paramref name="plan"/>, uploaded once.</summary>
    public DevicePlan Upload(BlockSparsePlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ObjectDisposedException.ThrowIf(disposed, this);
        return plans.GetOrAdd(plan, p => new DevicePlan(this, p));
    }

    /// <summary>Releases every plan, the accelerator and the context.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        foreach (var plan in plans.Values)
        {
            plan.Dispose();
        }

        ReleaseCachedMemory();
        disposed = true;
        accelerator.Dispose();
        context.Dispose();
    }

    /// <summary>Bytes of released tensor buffers kept for reuse (not counted in <see cref="AllocatedBytes"/>).</summary>
    public long CachedBytes => cached.Values.Sum(bag => bag.Sum(buffer => buffer.LengthInBytes));

    /// <summary>Frees the buffers kept for reuse.</summary>
    public void ReleaseCachedMemory()
    {
        foreach (var bag in cached.Values)
        {
            while (bag.TryTake(out var buffer))
            {
                buffer.Dispose();
            }
        }
    }

    /// <summary>
    /// A buffer of <paramref name="length"/> elements, counted towards the peak: a released one of the same type and
    /// length when there is one. Freeing device memory synchronizes the whole device, so the library keeps released
    /// tensor buffers, like PyTorch's caching allocator; kernels run in stream order, so reuse is safe.
    /// </summary>
    internal MemoryBuffer1D<T, Stride1D.Dense> Allocate<T>(long length)
        where T : unmanaged
    {
        var buffer = cached.TryGetValue((typeof(T), length), out var bag) && bag.TryTake(out var reused)
            ? (MemoryBuffer1D<T, Stride1D.Dense>)reused
            : Accelerator.Allocate1D<T>(length);
        Track(buffer.LengthInBytes);
        return buffer;
    }

    /// <summary>Takes back a buffer from <see cref="Allocate{T}"/> for reuse.</summary>
    internal void Release<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged
    {
        Track(-buffer.LengthInBytes);
        if (disposed)
        {
            buffer.Dispose();
            return;
        }

        cached.GetOrAdd((typeof(T), buffer.Length), _ => []).Add(buffer);
    }

    /// <summary>Records <paramref name="bytes"/> allocated (positive) or released (negative).</summary>
    internal void Track(long bytes)
    {
        var now = Interlocked.Add(ref allocatedBytes, bytes);
        long peak;
        while (now > (peak = Interlocked.Read(ref peakBytes)) && Interlocked.CompareExchange(ref peakBytes, now, peak) != peak)
        {
        }
    }

    /// <summary>Throws when <paramref name="other"/> is not this device.</summary>
    internal void RequireSame(ComputeDevice other, string paramName)
    {
        if (!ReferenceEquals(this, other))
        {
            Guard.Throw(paramName, $"{paramName} lives on {other.Name}, not on {Name}: tensors of one call must share a device");
        }
    }
}
