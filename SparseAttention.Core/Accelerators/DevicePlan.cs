using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;
using SparseAttention.Planning;

namespace SparseAttention.Accelerators;

/// <summary>
/// A plan's tables uploaded to one device, kept in the device's plan cache until evicted (see
/// <see cref="ComputeDevice.PlanCacheBytes"/>) or until the device is disposed.
/// </summary>
public sealed class DevicePlan : IDisposable
{
    private readonly ComputeDevice device;
    private readonly MemoryBuffer1D<int, Stride1D.Dense>[] intBuffers;
    private readonly MemoryBuffer1D<uint, Stride1D.Dense> masks;
    private readonly Lock gate = new();
    private int pins;
    private bool evicted;
    private bool disposed;

    internal DevicePlan(ComputeDevice device, BlockSparsePlan plan)
    {
        this.device = device;
        Plan = plan;
        var (sources, maskWords) = plan.ForUpload();
        intBuffers = sources.Select(Upload).ToArray();
        masks = device.Allocate<uint>(Math.Max(maskWords.Length, 1));
        masks.View.SubView(0, maskWords.Length).CopyFromCPU(maskWords);
        SizeInBytes = intBuffers.Sum(buffer => buffer.LengthInBytes) + masks.LengthInBytes;
        Tables = new PlanTables
        {
            BlockRows = intBuffers[0].View,
            BlockColumns = intBuffers[1].View,
            RowOffsets = intBuffers[2].View,
            RowBlocks = intBuffers[3].View,
            ColumnOffsets = intBuffers[4].View,
            ColumnBlocks = intBuffers[5].View,
            BlockIsFull = intBuffers[6].View,
            Masks = masks.View,
            BlockSize = plan.BlockSize,
            BlockCount = plan.BlockCount,
            BlocksPerHead = plan.BlocksPerHead,
            LayoutHeads = plan.LayoutHeads,
            WordsPerBlock = plan.WordsPerBlock,
        };
    }

    /// <summary>The host plan.</summary>
    public BlockSparsePlan Plan { get; }

    /// <summary>The tables as kernels take them; valid until the plan is evicted from its device's cache or disposed.</summary>
    public PlanTables Tables { get; }

    /// <summary>Device bytes of the tables.</summary>
    public long SizeInBytes { get; }

    /// <summary>Frees the device tables once kernels queued before have finished; later calls do nothing.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
        }

        device.Track(-SizeInBytes);
        device.Free([.. intBuffers, masks]);
    }

    /// <summary>Keeps the tables alive until <see cref="Unpin"/>; false when the plan was evicted meanwhile (upload it again).</summary>
    internal bool TryPin()
    {
        lock (gate)
        {
            if (evicted)
            {
                return false;
            }

            pins++;
            return true;
        }
    }

    /// <summary>Ends a <see cref="TryPin"/>; the last one frees the tables of a plan evicted meanwhile.</summary>
    internal void Unpin()
    {
        bool free;
        lock (gate)
        {
            free = --pins == 0 && evicted;
        }

        if (free)
        {
            Dispose();
        }
    }

    /// <summary>Called when the device's cache drops the plan: frees the tables now, or at the last <see cref="Unpin"/>.</summary>
    internal void Evict()
    {
        bool free;
        lock (gate)
        {
            evicted = true;
            free = pins == 0;
        }

        if (free)
        {
            Dispose();
        }
    }

    // Empty tables still get one element: ILGPU views of length 0 cannot be passed to every backend.
    private MemoryBuffer1D<int, Stride1D.Dense> Upload(int[] source)
    {
        var buffer = device.Allocate<int>(Math.Max(source.Length, 1));
        buffer.View.SubView(0, source.Length).CopyFromCPU(source);
        return buffer;
    }
}

/// <summary>A device plan kept alive while an op launches kernels with its tables; dispose it after the launches.</summary>
internal readonly struct PinnedPlan(DevicePlan plan) : IDisposable
{
    /// <summary>The tables as kernels take them.</summary>
    public PlanTables Tables => plan.Tables;

    /// <summary>Lets an evicted plan be freed.</summary>
    public void Dispose() => plan.Unpin();
}
