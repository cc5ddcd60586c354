using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Caching;
using SparseAttention.Planning;
using SparseAttention.Selection;

namespace SparseAttention.Accelerators;

/// <summary>
/// Owns an ILGPU <see cref="ILGPU.Context"/> and one accelerator: CUDA when present, else the CPU accelerator
/// with 32-lane warps (so kernels written for CUDA warps run unchanged). Also tracks this library's device memory.
/// </summary>
public sealed class ComputeDevice : IDisposable
{
    private readonly Context context;
    private readonly Accelerator accelerator;
    private readonly LruCache<BlockSparsePlan, DevicePlan> plans;
    private readonly BufferPool released;
    private long allocatedBytes;
    private long peakBytes;
    private bool disposed;

    private ComputeDevice(Context context, Accelerator accelerator)
    {
        this.context = context;
        this.accelerator = accelerator;
        plans = new(256L << 20, plan => plan.SizeInBytes, plan => plan.Evict());

        // An eighth of a GPU holds the buffers a fixed-shape training step releases and takes again, and leaves the rest
        // to live tensors; ILGPU reports the CPU accelerator's memory as unbounded, so it gets a fixed 1 GiB.
        released = new(IsCuda ? accelerator.MemorySize / 8 : 1L << 30, Free);
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

    /// <summary>What the kernel selector reads of this device: CUDA or not, compute capability, shared memory per group.</summary>
    public DeviceCapability Capability => new(
        IsCuda,
        Accelerator is CudaAccelerator cuda && cuda.Architecture is { } architecture ? (architecture.Major * 10) + architecture.Minor : 0,
        Accelerator.MaxSharedMemoryPerGroup);

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

    /// <summary>
    /// The most bytes of plan tables kept on the device (default 256 MiB); past it the least recently used plans are
    /// freed, and uploaded again when next used. The most recently used plan stays even when it alone is larger.
    /// </summary>
    /// <remarks>
    /// The default holds the 96 plans of a measured variable-length loop (fixed pattern, 4 heads, ctx 128 to 6208:
    /// 103 MB) and a few of the largest common plans (per-head fixed, 16 heads, ctx 16k: 70 to 80 MB each).
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public long PlanCacheBytes
    {
        get => plans.Capacity;
        set => plans.Capacity = value;
    }

    /// <summary>Bytes of plan tables kept on the device (counted in <see cref="AllocatedBytes"/>).</summary>
    public long PlanBytes => plans.Weight;

    /// <summary>
    /// The most bytes of released tensor buffers kept for reuse (default: an eighth of a CUDA device's memory, 1 GiB on
    /// the CPU accelerator); past it the buffers released longest ago are freed.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public long BufferCacheBytes
    {
        get => released.Capacity;
        set => released.Capacity = value;
    }

    /// <summary>
    /// The device copy of <paramref name="plan"/>, uploaded when not in the plan cache. Its tables stay valid until a
    /// later upload evicts it (see <see cref="PlanCacheBytes"/>); the library's ops look their plan up at every launch,
    /// so they upload an evicted plan again.
    /// </summary>
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

        plans.Clear();
        ReleaseCachedMemory();
        disposed = true;
        accelerator.Dispose();
        context.Dispose();
    }

    /// <summary>Bytes of released tensor buffers kept for reuse (not counted in <see cref="AllocatedBytes"/>).</summary>
    public long CachedBytes => released.Bytes;

    /// <summary>Frees the buffers kept for reuse.</summary>
    public void ReleaseCachedMemory() => released.Clear();

    /// <summary>
    /// <paramref name="plan"/>'s device tables, kept alive until the result is disposed even if another thread's
    /// upload evicts the plan meanwhile; an op holds it from reading the tables until its last kernel is queued.
    /// </summary>
    internal PinnedPlan Pin(BlockSparsePlan plan)
    {
        while (true)
        {
            var uploaded = Upload(plan);
            if (uploaded.TryPin())
            {
                return new PinnedPlan(uploaded);
            }
        }
    }

    /// <summary>Frees device buffers that are no longer tracked.</summary>
    /// <remarks>
    /// Kernels queued earlier may still read them: wait for them here, once for the lot, rather than count on the
    /// backend's free to.
    /// </remarks>
    internal void Free(IReadOnlyCollection<MemoryBuffer> buffers)
    {
        if (buffers.Count == 0)
        {
            return;
        }

        accelerator.Synchronize();
        foreach (var buffer in buffers)
        {
            buffer.Dispose();
        }
    }

    /// <summary>
    /// A buffer of <paramref name="length"/> elements, counted towards the peak: a released one of the same type and
    /// length when there is one. Freeing device memory synchronizes the whole device, so the library keeps released
    /// tensor buffers (up to <see cref="BufferCacheBytes"/>), like PyTorch's caching allocator; kernels run in stream
    /// order, so reuse is safe.
    /// </summary>
    internal MemoryBuffer1D<T, Stride1D.Dense> Allocate<T>(long length)
        where T : unmanaged
    {
        var buffer = released.Take(typeof(T), length) is { } reused ? (MemoryBuffer1D<T, Stride1D.Dense>)reused : Accelerator.Allocate1D<T>(length);
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

        released.Add(typeof(T), buffer);
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
