using System.Runtime.InteropServices;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Ops;
using SparseAttention.Planning;
using SparseAttention.Selection;
using SparseAttention.Tensors;

namespace SparseAttention.Attention;

/// <summary>
/// Attention over <c>[batch, ctx, heads * headDim]</c> tensors: the original's <c>blocksparse_attention_impl</c>
/// (block-sparse, every pattern) and <c>attention_impl</c> (dense, on the device). Pass a <see cref="Tape"/> to
/// record the call for <see cref="Tape.Backward{T}"/>.
/// </summary>
public static class BlockSparseAttention
{
    /// <summary>Block-sparse attention with a built-in pattern; <c>strided</c> runs on the transposed sequence.</summary>
    /// <exception cref="ArgumentException">Shapes, devices, heads or the pattern's parameters do not fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException">autoregressAtKey is outside [0, ctx), or the scale is not positive and finite.</exception>
    public static DeviceTensor<T> Compute<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, int heads, AttentionPattern pattern, int blockSize, AttentionOptions? options = null, Tape? tape = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var ctx = CheckInputs(q, k, v, heads);
        var call = Describe(q, k, v, pattern.ToLayout(ctx, blockSize, heads), options ?? AttentionOptions.Default);
        if (pattern.Kind != PatternKind.Strided)
        {
            return Run(q, k, v, call, tape);
        }

        // Strided: transpose tokens so positions L apart become neighbours, attend there, transpose back (docs/semantics.md §9).
        // autoregressAtKey speaks of natural positions; on the four built-in patterns it removes nothing (docs/semantics.md §7).
        var stride = pattern.AttentionLength;
        using var qt = Permute(q, stride, false, tape);
        using var kt = Permute(k, stride, false, tape);
        using var vt = Permute(v, stride, false, tape);

        // A tape keeps what the attention's backward reads (the permuted inputs, the fused path's output) after these disposals.
        using var transposedOutput = Run(qt, kt, vt, call with { AutoregressAtKey = null }, tape);
        var output = Permute(transposedOutput, stride, true, tape);
        return output;
    }

    /// <summary>Block-sparse attention with a custom layout (heads come from the layout).</summary>
    /// <exception cref="ArgumentException">Shapes, devices or heads do not fit the layout.</exception>
    /// <exception cref="ArgumentOutOfRangeException">autoregressAtKey is outside [0, ctx), or the scale is not positive and finite.</exception>
    public static DeviceTensor<T> Compute<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, BlockLayout layout, AttentionOptions? options = null, Tape? tape = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(layout);
        CheckInputs(q, k, v, layout.Heads);
        return Run(q, k, v, Describe(q, k, v, layout, options ?? AttentionOptions.Default), tape);
    }

    /// <summary>
    /// Dense attention on the device (the original's <c>attention_impl</c>) under a token mask: every block is computed,
    /// the mask excludes elements. ctx must be a multiple of 16.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes, devices or heads do not fit.</exception>
    public static DeviceTensor<T> Dense<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, int heads, TokenMask mask, AttentionOptions? options = null, Tape? tape = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(mask);
        var ctx = CheckInputs(q, k, v, heads);
        return DenseChecked(q, k, v, heads, ctx, mask, options ?? AttentionOptions.Default, tape);
    }

    /// <summary>Dense attention on the device with a built-in pattern's token mask, in natural token order.</summary>
    /// <exception cref="ArgumentException">Shapes, devices, heads or the pattern's parameters do not fit.</exception>
    public static DeviceTensor<T> Dense<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, int heads, AttentionPattern pattern, int blockSize, AttentionOptions? options = null, Tape? tape = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var ctx = CheckInputs(q, k, v, heads);
        return DenseChecked(q, k, v, heads, ctx, pattern.ToTokenMask(ctx, blockSize, heads), options ?? AttentionOptions.Default, tape);
    }

    private const int DenseBlock = 16;
    private const int FusedDenseBlock = 64;

    private static DeviceTensor<T> DenseChecked<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, int heads, int ctx, TokenMask mask, AttentionOptions options, Tape? tape)
        where T : unmanaged
    {
        Guard.MultipleOf(ctx, "ctx", DenseBlock, "blockSize");

        // Every block is enabled; the fused kernels want bigger blocks and skip the tiles the mask empties.
        var fused = ctx % FusedDenseBlock == 0 && KernelSelector.ForAttention<T>(q.Device.Capability, q.Shape[2] / heads, FusedDenseBlock, options) is KernelPath.Fused or KernelPath.FusedHopper;
        var blockSize = fused ? FusedDenseBlock : DenseBlock;
        var blocks = ctx / blockSize;
        var all = new bool[blocks, blocks];
        MemoryMarshal.CreateSpan(ref all[0, 0], all.Length).Fill(true);
        return Run(q, k, v, Describe(q, k, v, BlockLayout.Custom(all, blockSize, heads, mask), options), tape);
    }

    // The rest of the validation, once per public call (CheckInputs did shapes and devices): what depends on the plan,
    // alignment, autoregressAtKey and the options; then the selector's choice. Nothing below checks again.
    private static AttentionCall Describe<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, BlockLayout layout, AttentionOptions options)
        where T : unmanaged
    {
        var plan = BlockSparsePlan.For(layout);
        var dims = BlockSparseOps.DenseDims(plan, q, nameof(q));
        BlockSparseOps.RequireVectorAligned(q, nameof(q));
        BlockSparseOps.RequireVectorAligned(k, nameof(k));
        BlockSparseOps.RequireVectorAligned(v, nameof(v));
        CheckAutoregress(options, plan.Ctx);
        var path = KernelSelector.ForAttention<T>(q.Device.Capability, dims.HeadDim, plan.BlockSize, options);
        var scale = CheckScale(options, dims.HeadDim);
        return new AttentionCall(plan, dims, scale, options.AutoregressAtKey, path, options.Recompute);
    }

    private static DeviceTensor<T> Run<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, AttentionCall call, Tape? tape)
        where T : unmanaged => call.Path switch
        {
            KernelPath.Fused or KernelPath.FusedHopper => RunFused(q, k, v, call, tape),
            KernelPath.FmaBf16Scores => RunUnfused<T, BFloat16>(q, k, v, call, tape),
            KernelPath.Tf32 or KernelPath.TensorCores or KernelPath.Fma => RunUnfused<T, T>(q, k, v, call, tape),
            var path => throw new ArgumentOutOfRangeException(nameof(call), path, "no attention runs on this kernel path"),
        };

    private static DeviceTensor<T> RunUnfused<T, TWeight>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, AttentionCall call, Tape? tape)
        where T : unmanaged
        where TWeight : unmanaged
    {
        var step = new AttentionStep<T, TWeight>(call);
        return Tape.Run(
            tape,
            "attention",
            [q, k, v],
            context =>
            {
                using var probabilities = step.Probabilities(q, k);
                context.Save(q, k, v);
                if (!call.Recompute)
                {
                    context.Save(probabilities);
                }

                return step.Output(probabilities, v);
            },
            (context, grad) => step.Backward(q, k, v, call.Recompute ? null : context.Saved<TWeight>(3), grad),
            Flops(call));
    }

    private static DeviceTensor<T> RunFused<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, AttentionCall call, Tape? tape)
        where T : unmanaged
    {
        var step = new FusedAttention<T>(call);
        return Tape.Run(
            tape,
            "attention",
            [q, k, v],
            context =>
            {
                var (output, logSumExp) = step.Forward(q, k, v);
                using (logSumExp)
                {
                    context.Save(q, k, v);
                    if (!call.Recompute)
                    {
                        context.Save(output, logSumExp);
                    }
                }

                return output;
            },
            (context, grad) =>
            {
                if (!call.Recompute)
                {
                    return step.Backward(q, k, v, context.Saved<T>(3), context.Saved<float>(4), grad);
                }

                // The per-call recompute keeps nothing but the inputs: the forward runs again for its output and log-sum-exp.
                var (again, againLogSumExp) = step.Forward(q, k, v);
                using (again)
                using (againLogSumExp)
                {
                    return step.Backward(q, k, v, again, againLogSumExp, grad);
                }
            },
            Flops(call));
    }

    // Two matrix products over the enabled blocks: what a recompute of the forward costs the scheduler.
    private static long Flops(AttentionCall call) =>
        4L * call.Dims.Batch * call.Dims.Heads * call.Plan.BlocksPerHead * call.Plan.BlockSize * call.Plan.BlockSize * call.Dims.HeadDim;

    // Only bytes move; its cost to the scheduler is the elements it copies.
    private static DeviceTensor<T> Permute<T>(DeviceTensor<T> input, int stride, bool inverse, Tape? tape)
        where T : unmanaged => Tape.Run(
            tape,
            "permute",
            [input],
            _ => TensorOps.StridedTranspose(input, stride, inverse),
            (_, grad) => [TensorOps.StridedTranspose(grad, stride, !inverse)],
            input.Length);

    private static int CheckInputs<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, int heads)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        Guard.Positive(heads, nameof(heads));
        if (q.Shape.Count != 3)
        {
            Guard.Throw(nameof(q), $"q must be [batch, ctx, heads * headDim], not rank {q.Shape.Count}");
        }

        foreach (var (tensor, name) in new[] { (k, nameof(k)), (v, nameof(v)) })
        {
            if (!tensor.HasShape([.. q.Shape]))
            {
                Guard.Throw(name, $"{name} has shape [{string.Join(", ", tensor.Shape)}] but q has [{string.Join(", ", q.Shape)}]");
            }

            q.Device.RequireSame(tensor.Device, name);
        }

        Guard.MultipleOf(q.Shape[2], "embedding", heads, nameof(heads));
        return q.Shape[1];
    }

    // The fused kernels take each row's maximum of the raw scores and scale it (FlashAttention's one fma per
    // exponential), which holds only for a positive scale; the unfused path keeps the same rule.
    private const float Log2E = 1.44269504088896341f;

    private static float CheckScale(AttentionOptions options, int headDim)
    {
        // The kernels multiply it by log2(e) once, so that product must stay finite too.
        var scale = (float)(options.Scale ?? 1.0 / Math.Sqrt(headDim));
        if (!(scale > 0f && float.IsFinite(scale * Log2E)))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Scale, "options.Scale must be positive and finite as a float, times log2(e) included");
        }

        return scale;
    }

    private static void CheckAutoregress(AttentionOptions? options, int ctx)
    {
        if (options?.AutoregressAtKey is { } key)
        {
            TokenMasks.CheckAutoregressAtKey(key, ctx);
        }
    }
}
