using System.Runtime.CompilerServices;
using ILGPU.Runtime;
using SparseAttention.Accelerators;
using SparseAttention.Kernels.BlockSparse;
using SparseAttention.Kernels.Common;
using SparseAttention.Planning;
using SparseAttention.Tensors;

namespace SparseAttention.Ops;

/// <summary>Guard clauses shared by the ops, in a fixed order: nulls, rank, ctx, heads, head dim, devices.</summary>
public static partial class BlockSparseOps
{
    /// <summary>Head dims the kernels take: multiples of their 16-wide tile.</summary>
    public const int HeadDimMultiple = SddKernels.Tile;

    internal static Dims CheckDense<T>(BlockSparsePlan plan, DeviceTensor<T> first, string firstName, DeviceTensor<T> second, string secondName)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(first, firstName);
        ArgumentNullException.ThrowIfNull(second, secondName);
        var dims = DenseDims(plan, first, firstName);
        if (!second.HasShape([.. first.Shape]))
        {
            Guard.Throw(secondName, $"{secondName} has shape [{string.Join(", ", second.Shape)}] but {firstName} has [{string.Join(", ", first.Shape)}]");
        }

        first.Device.RequireSame(second.Device, secondName);
        RequireVectorAligned(first, firstName);
        RequireVectorAligned(second, secondName);
        return dims;
    }

    /// <summary>fp16 and bf16 tensors must start on a 16-byte boundary: their kernels move eight elements per load and store.</summary>
    internal static void RequireVectorAligned<T>(DeviceTensor<T> tensor, string name)
        where T : unmanaged
    {
        if (Unsafe.SizeOf<T>() == 2 && !IsVectorAligned(tensor))
        {
            Guard.Throw(name, $"{name} does not start on a 16-byte boundary: fp16 and bf16 kernels move 16 bytes at a time, so wrap views whose first element is 16-byte aligned");
        }
    }

    /// <summary>Whether the tensor's first element lies on a 16-byte boundary.</summary>
    internal static bool IsVectorAligned<T>(DeviceTensor<T> tensor)
        where T : unmanaged => tensor.View.AsContiguous().LoadEffectiveAddressAsPtr().ToInt64() % 16 == 0;

    internal static Dims DenseDims<T>(BlockSparsePlan plan, DeviceTensor<T> tensor, string name)
        where T : unmanaged
    {
        if (tensor.Shape.Count != 3)
        {
            Guard.Throw(name, $"{name} must be [batch, ctx, heads * headDim], not rank {tensor.Shape.Count}");
        }

        int batch = tensor.Shape[0], ctx = tensor.Shape[1], embedding = tensor.Shape[2];
        Guard.MultipleOf(ctx, "ctx", plan.BlockSize, "blockSize");
        if (ctx != plan.Ctx)
        {
            Guard.Throw(name, $"{name} has ctx {ctx} but the plan covers ctx {plan.Ctx}");
        }

        Guard.MultipleOf(embedding, "embedding", plan.Heads, "heads");
        var headDim = embedding / plan.Heads;
        if (headDim == 0 || headDim % HeadDimMultiple != 0)
        {
            Guard.Throw("headDim", $"headDim {headDim} is not supported: use a positive multiple of {HeadDimMultiple}");
        }

        Guard.Positive(batch, "batch");
        return new Dims { Batch = batch, Ctx = ctx, Heads = plan.Heads, HeadDim = headDim };
    }

    internal static void CheckWeights<TWeight>(BlockSparsePlan plan, Dims dims, ComputeDevice device, DeviceTensor<TWeight> weights, string name)
        where TWeight : unmanaged
    {
        ArgumentNullException.ThrowIfNull(weights, name);
        int[] expected = [dims.Batch, plan.Heads, plan.BlocksPerHead, plan.BlockSize, plan.BlockSize];
        if (!weights.HasShape(expected))
        {
            Guard.Throw(name, $"{name} has shape [{string.Join(", ", weights.Shape)}] but the plan needs [{string.Join(", ", expected)}]");
        }

        device.RequireSame(weights.Device, name);
    }

    private static Dims WeightDims<T>(BlockSparsePlan plan, DeviceTensor<T> weights, string name)
        where T : unmanaged
    {
        if (weights.Shape.Count != 5)
        {
            Guard.Throw(name, $"{name} must be [batch, heads, blocks, block, block], not rank {weights.Shape.Count}");
        }

        return new Dims { Batch = weights.Shape[0], Ctx = plan.Ctx, Heads = plan.Heads, HeadDim = HeadDimMultiple };
    }
}
