using SparseAttention.Accelerators;
using SparseAttention.Kernels.Common;
using SparseAttention.Planning;
using SparseAttention.Selection;
using SparseAttention.Tensors;

namespace SparseAttention.Ops;

/// <summary>
/// The block-sparse primitives of docs/semantics.md §6 (the original's <c>BlocksparseTransformer</c>). Dense tensors are
/// <c>[batch, ctx, heads * headDim]</c>; block-sparse weights are <c>[batch, heads, blocks, block, block]</c>.
/// Every argument is checked before any kernel runs, so a failed call leaves the destination untouched.
/// </summary>
public static partial class BlockSparseOps
{
    /// <summary>SDD (<c>nt</c>): <c>weights[n,h,b] = left[block i] . right[block j]^T</c> for every enabled block.</summary>
    /// <param name="left">Queries (or output gradients).</param>
    /// <param name="right">Keys (or values).</param>
    /// <param name="plan">The layout's plan.</param>
    /// <param name="weights">Destination <c>[batch, heads, blocks, block, block]</c>: of <typeparamref name="T"/>, or BFloat16 for float inputs.</param>
    /// <param name="allowTf32">fp32 only: use TF32 tensor cores (faster, about 1e-3 relative error) instead of fp32 FMA.</param>
    /// <exception cref="ArgumentException">Shapes, devices or the head dim do not fit the plan, or the weights' type does not fit the inputs (or <paramref name="allowTf32"/>).</exception>
    public static void QueryKey<T, TWeight>(DeviceTensor<T> left, DeviceTensor<T> right, BlockSparsePlan plan, DeviceTensor<TWeight> weights, bool allowTf32 = false)
        where T : unmanaged
        where TWeight : unmanaged
    {
        var dims = CheckDense(plan, left, nameof(left), right, nameof(right));
        CheckWeights(plan, dims, left.Device, weights, nameof(weights));
        RequireVectorAligned(weights, nameof(weights));
        QueryKeyCore(left, right, plan, weights, dims, KernelSelector.ForOps<T, TWeight>(allowTf32));
    }

    /// <summary>SDD on arguments a public entry has checked, on the kernel of <paramref name="path"/> (the selector's).</summary>
    internal static void QueryKeyCore<T, TWeight>(DeviceTensor<T> left, DeviceTensor<T> right, BlockSparsePlan plan, DeviceTensor<TWeight> weights, Dims dims, KernelPath path)
        where T : unmanaged
        where TWeight : unmanaged
    {
        using var pinned = left.Device.Pin(plan);
        ElementDispatch.Run<T, SddAction<T, TWeight>>(new(left, right, weights, dims, pinned.Tables, path));
    }

    /// <summary>DSD (<c>nn</c>): <c>output[block row i] = sum over b = (i, j) of weights[b] . dense[block j]</c>.</summary>
    /// <param name="weights">Block-sparse weights: of <typeparamref name="T"/>, or BFloat16 for float inputs.</param>
    /// <param name="dense">Values (or keys, for a gradient).</param>
    /// <param name="plan">The layout's plan.</param>
    /// <param name="output">Destination, shaped like <paramref name="dense"/>.</param>
    /// <param name="allowTf32">fp32 only: use TF32 tensor cores instead of fp32 FMA.</param>
    /// <exception cref="ArgumentException">Shapes, devices or the head dim do not fit the plan, or the weights' type does not fit the inputs (or <paramref name="allowTf32"/>).</exception>
    public static void WeightValue<T, TWeight>(DeviceTensor<TWeight> weights, DeviceTensor<T> dense, BlockSparsePlan plan, DeviceTensor<T> output, bool allowTf32 = false)
        where T : unmanaged
        where TWeight : unmanaged => Dsd(weights, dense, plan, output, transposed: false, allowTf32);

    /// <summary>Transposed DSD (<c>tn</c>): <c>output[block column j] = sum over b = (i, j) of weights[b]^T . dense[block i]</c>.</summary>
    /// <param name="weights">Block-sparse weights: of <typeparamref name="T"/>, or BFloat16 for float inputs.</param>
    /// <param name="dense">The dense operand.</param>
    /// <param name="plan">The layout's plan.</param>
    /// <param name="output">Destination, shaped like <paramref name="dense"/>.</param>
    /// <param name="allowTf32">fp32 only: use TF32 tensor cores instead of fp32 FMA.</param>
    /// <exception cref="ArgumentException">Shapes, devices or the head dim do not fit the plan, or the weights' type does not fit the inputs (or <paramref name="allowTf32"/>).</exception>
    public static void WeightValueTransposed<T, TWeight>(DeviceTensor<TWeight> weights, DeviceTensor<T> dense, BlockSparsePlan plan, DeviceTensor<T> output, bool allowTf32 = false)
        where T : unmanaged
        where TWeight : unmanaged => Dsd(weights, dense, plan, output, transposed: true, allowTf32);

    /// <summary>
    /// Softmax over each query row's enabled blocks of <c>scores * scale</c>; with <paramref name="useMask"/> only
    /// allowed elements take part and excluded ones become exactly 0; a row with nothing allowed becomes zeros.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes or devices do not fit the plan.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="autoregressAtKey"/> is outside [0, ctx).</exception>
    public static void Softmax<T>(DeviceTensor<T> scores, BlockSparsePlan plan, DeviceTensor<T> probabilities, float scale, bool useMask = true, int? autoregressAtKey = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(plan);
        var dims = WeightDims(plan, scores, nameof(scores));
        CheckWeights(plan, dims, scores.Device, probabilities, nameof(probabilities));
        RequireVectorAligned(scores, nameof(scores));
        RequireVectorAligned(probabilities, nameof(probabilities));
        if (autoregressAtKey is { } key)
        {
            Layouts.TokenMasks.CheckAutoregressAtKey(key, plan.Ctx);
        }

        SoftmaxCore(scores, plan, probabilities, dims, scale, useMask, autoregressAtKey ?? plan.Ctx);
    }

    /// <summary>The softmax on arguments a public entry has checked; <paramref name="autoregressAtKey"/> is ctx for none.</summary>
    internal static void SoftmaxCore<T>(DeviceTensor<T> scores, BlockSparsePlan plan, DeviceTensor<T> probabilities, Dims dims, float scale, bool useMask, int autoregressAtKey)
        where T : unmanaged
    {
        using var pinned = scores.Device.Pin(plan);
        ElementDispatch.Run<T, SoftmaxAction<T>>(new(scores, probabilities, dims, pinned.Tables, scale, useMask ? 1 : 0, autoregressAtKey));
    }

    /// <summary>Softmax gradient: <c>inputGrad = (outputGrad - rowsum(outputGrad * probabilities)) * probabilities * scale</c>.</summary>
    /// <exception cref="ArgumentException">Shapes or devices do not fit the plan.</exception>
    public static void SoftmaxGrad<T>(DeviceTensor<T> probabilities, DeviceTensor<T> outputGrad, BlockSparsePlan plan, DeviceTensor<T> inputGrad, float scale)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        ArgumentNullException.ThrowIfNull(plan);
        var dims = WeightDims(plan, probabilities, nameof(probabilities));
        CheckWeights(plan, dims, probabilities.Device, outputGrad, nameof(outputGrad));
        CheckWeights(plan, dims, probabilities.Device, inputGrad, nameof(inputGrad));
        RequireVectorAligned(probabilities, nameof(probabilities));
        RequireVectorAligned(outputGrad, nameof(outputGrad));
        RequireVectorAligned(inputGrad, nameof(inputGrad));
        SoftmaxGradCore(probabilities, outputGrad, plan, inputGrad, dims, scale);
    }

    /// <summary>The softmax gradient on arguments a public entry has checked.</summary>
    internal static void SoftmaxGradCore<T>(DeviceTensor<T> probabilities, DeviceTensor<T> outputGrad, BlockSparsePlan plan, DeviceTensor<T> inputGrad, Dims dims, float scale)
        where T : unmanaged
    {
        using var pinned = probabilities.Device.Pin(plan);
        ElementDispatch.Run<T, SoftmaxGradAction<T>>(new(probabilities, outputGrad, inputGrad, dims, pinned.Tables, scale));
    }

    /// <summary>A weight tensor shaped for <paramref name="plan"/>: <c>[batch, heads, blocks, block, block]</c>.</summary>
    public static DeviceTensor<T> AllocateWeights<T>(ComputeDevice device, BlockSparsePlan plan, int batch)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(plan);
        Guard.Positive(batch, nameof(batch));
        return DeviceTensor<T>.Allocate(device, batch, plan.Heads, plan.BlocksPerHead, plan.BlockSize, plan.BlockSize);
    }

    private static void Dsd<T, TWeight>(DeviceTensor<TWeight> weights, DeviceTensor<T> dense, BlockSparsePlan plan, DeviceTensor<T> output, bool transposed, bool allowTf32)
        where T : unmanaged
        where TWeight : unmanaged
    {
        var dims = CheckDense(plan, dense, nameof(dense), output, nameof(output));
        CheckWeights(plan, dims, dense.Device, weights, nameof(weights));
        RequireVectorAligned(weights, nameof(weights));
        DsdCore(weights, dense, plan, output, dims, transposed, KernelSelector.ForOps<T, TWeight>(allowTf32));
    }

    /// <summary>DSD (plain or transposed) on arguments a public entry has checked, on the kernel of <paramref name="path"/> (the selector's).</summary>
    internal static void DsdCore<T, TWeight>(DeviceTensor<TWeight> weights, DeviceTensor<T> dense, BlockSparsePlan plan, DeviceTensor<T> output, Dims dims, bool transposed, KernelPath path)
        where T : unmanaged
        where TWeight : unmanaged
    {
        using var pinned = dense.Device.Pin(plan);
        ElementDispatch.Run<T, DsdAction<T, TWeight>>(new(weights, dense, output, dims, pinned.Tables, transposed ? 1 : 0, path));
    }
}
