using SparseAttention.Attention;
using SparseAttention.Kernels.Fused;
using SparseAttention.Kernels.Hopper;
using SparseAttention.Tensors;

namespace SparseAttention.Selection;

/// <summary>
/// The one place kernels are chosen: an attention call's from the device, the element type, head dim, block size and
/// the caller's options; a direct block-sparse op's from its element and weight types and <c>allowTf32</c>. A kernel family states what it covers (<see cref="FlashKernels.Supports"/>); a family for a
/// new GPU architecture is one more branch here, on <see cref="DeviceCapability.ComputeCapability"/>.
/// </summary>
public static class KernelSelector
{
    /// <summary>
    /// The path for <typeparamref name="T"/> inputs: the fused kernels where asked for, or by default on CUDA where they
    /// apply (on Hopper's wgmma on sm_90 where they cover the call, unless <see cref="AttentionOptions.Hopper"/> is false); else the unfused ops on tensor cores (fp16/bf16), TF32 (fp32 with <c>AllowTf32</c>), bf16 scores or FMA.
    /// </summary>
    /// <exception cref="ArgumentException">The options ask for what cannot run this call (named <c>options</c>).</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static KernelPath ForAttention<T>(DeviceCapability device, int headDim, int blockSize, AttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var isFloat = typeof(T) == typeof(float);
        var isHalfWidth = typeof(T) == typeof(Half) || typeof(T) == typeof(BFloat16);
        if (!isFloat && !isHalfWidth)
        {
            throw new NotSupportedException($"element type {typeof(T).Name} is not supported: use float, Half or BFloat16");
        }

        if (options.BFloat16Scores && !isFloat)
        {
            Guard.Throw(nameof(options), $"BFloat16Scores is for float inputs; {typeof(T).Name} inputs keep scores in {typeof(T).Name}");
        }

        if (options.BFloat16Scores && options.AllowTf32)
        {
            Guard.Throw(nameof(options), "BFloat16Scores runs on the fp32 FMA path: it cannot be combined with AllowTf32");
        }

        var fusedCovers = isHalfWidth && FlashKernels.Supports(headDim, blockSize);
        if (options.Fused == true && !fusedCovers)
        {
            Guard.Throw(nameof(options), $"Fused needs Half or BFloat16 inputs, head dim {Listed(FlashKernels.HeadDims)} and block size {Listed(FlashKernels.BlockSizes)}; this call has {typeof(T).Name}, head dim {headDim}, block size {blockSize}");
        }

        if (options.Hopper == true)
        {
            if (!isHalfWidth || !HopperKernels.Supports(headDim, blockSize) || options.Fused == false)
            {
                Guard.Throw(nameof(options), $"Hopper needs the fused path, Half or BFloat16 inputs, head dim {Listed(HopperKernels.HeadDims)} and block size {Listed(HopperKernels.BlockSizes)}; this call has {typeof(T).Name}, head dim {headDim}, block size {blockSize}{(options.Fused == false ? ", Fused false" : string.Empty)}");
            }

            if (device.IsCuda && device.ComputeCapability != HopperComputeCapability)
            {
                Guard.Throw(nameof(options), $"Hopper needs a compute capability 9.0 device (or the CPU accelerator, which runs its C# twin); this device has {device.ComputeCapability / 10}.{device.ComputeCapability % 10}");
            }

            return KernelPath.FusedHopper;
        }

        if (options.Fused ?? (fusedCovers && device.IsCuda))
        {
            // On sm_90 the Hopper family is the default where it covers the call: timed faster than the portable
            // kernels forward+backward on dense causal attention, `local` and `strided` at head dims 64 and 128, and
            // forward on dense causal and `local` (level on `strided`; docs/benchmarks.md, Hopper backward v2 and v3).
            var hopperByDefault = options.Hopper is null && device.IsCuda && device.ComputeCapability == HopperComputeCapability;
            return hopperByDefault && isHalfWidth && HopperKernels.Supports(headDim, blockSize) ? KernelPath.FusedHopper : KernelPath.Fused;
        }

        if (isHalfWidth)
        {
            return KernelPath.TensorCores;
        }

        return options.BFloat16Scores ? KernelPath.FmaBf16Scores : options.AllowTf32 ? KernelPath.Tf32 : KernelPath.Fma;
    }

    /// <summary>
    /// The path of a direct call to a block-sparse matrix product (<c>BlockSparseOps.QueryKey</c>, <c>WeightValue</c>,
    /// <c>WeightValueTransposed</c>) with <typeparamref name="T"/> inputs and <typeparamref name="TWeight"/> weights:
    /// tensor cores for fp16/bf16, TF32 for fp32 with <paramref name="allowTf32"/>, FMA with bf16 weights, else FMA.
    /// </summary>
    /// <exception cref="ArgumentException">The weights do not fit the inputs (named <c>weights</c>), or bf16 weights with
    /// <paramref name="allowTf32"/> (named <c>allowTf32</c>).</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static KernelPath ForOps<T, TWeight>(bool allowTf32)
    {
        // Weights are stored in the input type, or in bf16 for fp32 inputs (the original kept its logits in bf16).
        var bf16Weights = typeof(TWeight) != typeof(T);
        if (bf16Weights && (typeof(T) != typeof(float) || typeof(TWeight) != typeof(BFloat16)))
        {
            Guard.Throw("weights", $"weights of {typeof(TWeight).Name} do not fit inputs of {typeof(T).Name}: use {typeof(T).Name}, or BFloat16 for float inputs");
        }

        if (bf16Weights && allowTf32)
        {
            Guard.Throw(nameof(allowTf32), "allowTf32 needs float weights: BFloat16 weights run on the fp32 FMA path");
        }

        if (typeof(T) == typeof(Half) || typeof(T) == typeof(BFloat16))
        {
            return KernelPath.TensorCores;
        }

        if (typeof(T) != typeof(float))
        {
            throw new NotSupportedException($"element type {typeof(T).Name} is not supported: use float, Half or BFloat16");
        }

        return bf16Weights ? KernelPath.FmaBf16Scores : allowTf32 ? KernelPath.Tf32 : KernelPath.Fma;
    }

    // wgmma and its sm_90a target exist on compute capability 9.0 only (not on later architectures).
    private const int HopperComputeCapability = 90;

    private static string Listed(IReadOnlyList<int> values) => $"{string.Join(", ", values.Take(values.Count - 1))} or {values[^1]}";
}
