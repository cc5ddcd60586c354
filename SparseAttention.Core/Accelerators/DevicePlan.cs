using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;
using SparseAttention.Planning;

namespace SparseAttention.Accelerators;

/// <summary>A plan's tables uploaded to one device, kept for the device's lifetime.</summary>
public sealed class DevicePlan : IDisposable
{
    private readonly ComputeDevice device;
    private readonly MemoryBuffer1D<int, Stride1D.Dense>[] intBuffers;
    private readonly MemoryBuffer1D<uint, Stride1D.Dense> masks;

    internal DevicePlan(ComputeDevice device, BlockSparsePlan plan)
    {
        this.device = device;
        Plan = plan;
        int[][] sources = [plan.BlockRows, plan.BlockColumns, plan.RowOffsets, plan.RowBlocks, plan.ColumnOffsets, plan.ColumnBlocks, plan.BlockIsFull];
        intBuffers = sources.Select(Upload).ToArray();
        masks = device.Allocate<uint>(Math.Max(plan.Masks.Length, 1));
        masks.View.SubView(0, plan.Masks.Length).CopyFromCPU(plan.Masks);
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

    /// <summary>The tables as kernels take them.</summary>
    public PlanTables Tables { get; }

    /// <summary>Frees the device tables.</summary>
    public void Dispose()
    {
        foreach (var buffer in intBuffers)
        {
            device.Track(-buffer.LengthInBytes);
            buffer.Dispose();
        }

        device.Track(-masks.LengthInBytes);
        masks.Dispose();
    }

    // Empty tables still get one element: ILGPU views of length 0 cannot be passed to every backend.
    private MemoryBuffer1D<int, Stride1D.Dense> Upload(int[] source)
    {
        var buffer = device.Allocate<int>(Math.Max(source.Length, 1));
        buffer.View.SubView(0, source.Length).CopyFromCPU(source);
        return buffer;
    }
}
