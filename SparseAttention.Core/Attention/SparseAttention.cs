using System.Runtime.InteropServices;
using SparseAttention.Accelerators;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Ops;
using SparseAttention.Planning;
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
    /// <exception cref="ArgumentOutOfRangeException">autoregressAtKey is outside [0, ctx).</exception>
    public static DeviceTensor<T> Compute<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, int heads, AttentionPattern pattern, int blockSize, AttentionOptions? options = null, Tape? tape = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var ctx = CheckInputs(q, k, v, heads);
        var layout = pattern.ToLayout(ctx, blockSize, heads);
        if (pattern.Kind != PatternKind.Strided)
        {
            return Run(q, k, v, layout, options ?? AttentionOptions.Default, tape);
        }

        // Strided: transpose tokens so positions L apart become neighbours, attend there, transpose back (docs/semantics.md §9).
        // autoregressAtKey speaks of natural positions; on the four built-in patterns it removes nothing (docs/semantics.md §7).
        CheckAutoregress(options, ctx);
        var stride = pattern.AttentionLength;
        var (qt, kt, vt) = (Permute(q, stride, false, tape), Permute(k, stride, false, tape), Permute(v, stride, false, tape));
        var transposedOutput = Run(qt, kt, vt, layout, (options ?? AttentionOptions.Default) with { AutoregressAtKey = null }, tape);

        // The fused backward reads the attention output, so it lives until the attention's backward has run.
        tape?.ReleaseWithLast(transposedOutput);
        var output = Permute(transposedOutput, stride, true, tape);
        if (tape is null)
        {
            qt.Dispose();
            kt.Dispose();
            vt.Dispose();
            transposedOutput.Dispose();
        }

        return output;
    }

    /// <summary>Block-sparse attention with a custom layout (heads come from the layout).</summary>
    /// <exception cref="ArgumentException">Shapes, devices or heads do not fit the layout.</exception>
    /// <exception cref="ArgumentOutOfRangeException">autoregressAtKey is outside [0, ctx).</exception>
    public static DeviceTensor<T> Compute<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, BlockLayout layout, AttentionOptions? options = null, Tape? tape = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(layout);
        CheckInputs(q, k, v, layout.Heads);
        return Run(q, k, v, layout, options ?? AttentionOptions.Default, tape);
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
        Guard.MultipleOf(ctx, "ctx", DenseBlock, "blockSize");
        options ??= AttentionOptions.Default;

        // Every block is enabled; the fused kernels want bigger blocks and skip the tiles the mask empties.
        var blockSize = ctx % FusedDenseBlock == 0 && UsesFused<T>(q.Device, q.Shape[2] / heads, FusedDenseBlock, options) ? FusedDenseBlock : DenseBlock;
        var blocks = ctx / blockSize;
        var all = new bool[blocks, blocks];
        MemoryMarshal.CreateSpan(ref all[0, 0], all.Length).Fill(true);

        return Run(q, k, v, BlockLayout.Custom(all, blockSize, heads, mask), options, tape);
    }

    /// <summary>Dense attention on the device with a built-in pattern's token mask, in natural token order.</summary>
    /// <exception cref="ArgumentException">Shapes, devices, heads or the pattern's parameters do not fit.</exception>
    public static DeviceTensor<T> Dense<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, int heads, AttentionPattern pattern, int blockSize, AttentionOptions? options = null, Tape? tape = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var ctx = CheckInputs(q, k, v, heads);
        return Dense(q, k, v, heads, pattern.ToTokenMask(ctx, blockSize, heads), options, tape);
    }

    private const int DenseBlock = 16;
    private const int FusedDenseBlock = 64;

    private static DeviceTensor<T> Run<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, BlockLayout layout, AttentionOptions options, Tape? tape)
        where T : unmanaged
    {
        var plan = BlockSparsePlan.For(layout);
        BlockSparseOps.CheckDense(plan, q, nameof(q), k, nameof(k));
        BlockSparseOps.CheckDense(plan, q, nameof(q), v, nameof(v));
        CheckAutoregress(options, plan.Ctx);
        if (!options.BFloat16Scores)
        {
            return RunWith<T, T>(q, k, v, plan, options, tape);
        }

        if (typeof(T) != typeof(float))
        {
            Guard.Throw(nameof(options), $"BFloat16Scores is for float inputs; {typeof(T).Name} inputs keep scores in {typeof(T).Name}");
        }

        if (options.AllowTf32)
        {
            Guard.Throw(nameof(options), "BFloat16Scores runs on the fp32 FMA path: it cannot be combined with AllowTf32");
        }

        return RunWith<T, BFloat16>(q, k, v, plan, options, tape);
    }

    private static DeviceTensor<T> RunWith<T, TWeight>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, BlockSparsePlan plan, AttentionOptions options, Tape? tape)
        where T : unmanaged
        where TWeight : unmanaged
    {
        var headDim = q.Shape[2] / plan.Heads;
        var scale = (float)(options.Scale ?? 1.0 / Math.Sqrt(headDim));
        if (UsesFused<T>(q.Device, headDim, plan.BlockSize, options))
        {
            return RunFused(q, k, v, plan, scale, options, tape);
        }

        var step = new AttentionStep<T, TWeight>(plan, scale, options.AutoregressAtKey, q.Shape[0], options.AllowTf32);
        var probabilities = step.Probabilities(q, k);
        var output = DeviceTensor<T>.Allocate(q.Device, [.. q.Shape]);
        BlockSparseOps.WeightValue(probabilities, v, plan, output, options.AllowTf32);
        if (tape is null)
        {
            probabilities.Dispose();
            return output;
        }

        DeviceTensor<TWeight>? saved = probabilities;
        if (options.Recompute)
        {
            probabilities.Dispose();
            saved = null;
        }

        tape.Record(new TapeEntry<T>([q, k, v], output, grad => step.Backward(q, k, v, saved, grad), saved));
        return output;
    }

    private static DeviceTensor<T> RunFused<T>(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, BlockSparsePlan plan, float scale, AttentionOptions options, Tape? tape)
        where T : unmanaged
    {
        var step = new FusedAttention<T>(plan, scale, options.AutoregressAtKey, q.Shape[0]);
        var (output, logSumExp) = step.Forward(q, k, v);
        if (tape is null || options.Recompute)
        {
            logSumExp.Dispose();
        }

        if (tape is null)
        {
            return output;
        }

        if (!options.Recompute)
        {
            tape.Record(new TapeEntry<T>([q, k, v], output, grad => step.Backward(q, k, v, output, logSumExp, grad), logSumExp));
            return output;
        }

        // Recompute keeps nothing but the inputs: backward runs the forward again for its output and log-sum-exp.
        tape.Record(new TapeEntry<T>([q, k, v], output, grad =>
        {
            var (again, againLogSumExp) = step.Forward(q, k, v);
            using (again)
            using (againLogSumExp)
            {
                return step.Backward(q, k, v, again, againLogSumExp, grad);
            }
        }, null));
        return output;
    }

    private static bool UsesFused<T>(ComputeDevice device, int headDim, int blockSize, AttentionOptions options)
        where T : unmanaged
    {
        var supported = FusedAttention<T>.Supports(headDim, blockSize);
        if (options.Fused == true && !supported)
        {
            Guard.Throw(nameof(options), $"Fused needs Half or BFloat16 inputs, head dim 32, 64 or 128 and block size 32, 64 or 128; this call has {typeof(T).Name}, head dim {headDim}, block size {blockSize}");
        }

        return options.Fused ?? (supported && device.IsCuda);
    }

    // On a tape, each forward permutation owns its output, the transposed q, k or v, so the tape frees it once its
    // backward has run (or when the tape is disposed): the attention backward that reads it runs before theirs.
    private static DeviceTensor<T> Permute<T>(DeviceTensor<T> input, int stride, bool inverse, Tape? tape)
        where T : unmanaged
    {
        var output = TensorOps.StridedTranspose(input, stride, inverse);
        tape?.Record(new TapeEntry<T>([input], output, grad => [TensorOps.StridedTranspose(grad, stride, !inverse)], inverse ? null : output));
        return output;
    }

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

    private static void CheckAutoregress(AttentionOptions? options, int ctx)
    {
        if (options?.AutoregressAtKey is { } key)
        {
            TokenMasks.CheckAutoregressAtKey(key, ctx);
        }
    }
}
