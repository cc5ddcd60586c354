using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Features128 = SparseAttention.Kernels.Fused.Tiles<SparseAttention.Kernels.Fused.Features64, SparseAttention.Kernels.Fused.Features64>;
using Features32 = SparseAttention.Kernels.Fused.Tiles<SparseAttention.Kernels.Fused.Tiles<SparseAttention.Kernels.Fused.Tile8, SparseAttention.Kernels.Fused.Tile8>, SparseAttention.Kernels.Fused.Tiles<SparseAttention.Kernels.Fused.Tile8, SparseAttention.Kernels.Fused.Tile8>>;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

// Fused block-sparse attention (FlashAttention-2 style): scores and probabilities live only in a warp's registers. The
// backward: one group per block row (dQ) or block column (dK, dV) and head, one warp per 16 of its tokens, 16x16 tiles
// (the forward's structure up to v5). The forward from v6: FlashKernels.Forward.cs. The m16n8 accumulators of S are
// already the A fragments of P for P . V, so P never leaves the registers.
// Softmax in base 2: x = s * scale * log2(e), P = exp2(x - lse), lse stored per row in those units.
// Versions:
//   v1  warps independent, fragments loaded from global memory (L1/L2), 16-key chunks, online max/sum per chunk,
//       whole chunks no lane keeps skipped, full blocks skip the mask, deterministic backward without atomics.
//       Accumulator tiles as Ref<float> fields: ptxas kept them on a 752-byte stack (H200: all 4k forward 18.8 ms).
//   v2  tiles as plain float fields copied into Ref locals around each mma: no stack frame (4.1 ms).
//   v3  B fragments as 4-byte pairs transposed by movmatrix instead of 2-byte loads: same speed (latency-bound).
//   (v4 changed the permutation and the host side only; numbers in docs/benchmarks.md.)
//   v5  lane arithmetic by shifts and masks (ILGPU writes x / 4 as an integer division): same speed within noise.
//   v6  forward: FlashAttention-2's structure (FlashKernels.Forward.cs): 64 query rows per group, Q in registers,
//       K and V staged by cp.async, 64-key steps, ldmatrix; H200 dense causal D64 4.56 -> 0.95 ms. dQ on the same
//       structure (FlashKernels.QueryGrad.cs), Q and dO in registers; dK/dV still v5.

/// <summary>The fused attention kernels and their launchers.</summary>
public static partial class FlashKernels
{
    /// <summary>Head dims the fused kernels are specialised for (fp16/bf16 inputs).</summary>
    public static IReadOnlyList<int> HeadDims { get; } = [32, 64, 128];

    /// <summary>Block sizes the fused kernels walk.</summary>
    public static IReadOnlyList<int> BlockSizes { get; } = [32, 64, 128];

    /// <summary>Whether the fused kernels cover this head dim and block size (fp16/bf16 inputs).</summary>
    public static bool Supports(int headDim, int blockSize) => HeadDims.Contains(headDim) && BlockSizes.Contains(blockSize);

    // The dK/dV kernel specialised for a head dim: its accumulators are register tiles of that width.
    private static Action<FlashKeyValueGradParams> KeyValueGradKernelFor<TElement>(int headDim)
        where TElement : struct, IElement<ushort>, IMmaElement => headDim switch
        {
            32 => KeyValueGradKernel<TElement, Features32>,
            64 => KeyValueGradKernel<TElement, Features64>,
            128 => KeyValueGradKernel<TElement, Features128>,
            _ => throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the fused kernels take head dims 32, 64 and 128"),
        };

    // One group per block row or column and (sequence, head); a warp per 16 tokens of it.
    private static KernelConfig Config(Accelerator accelerator, in FlashProblem p) =>
        new(new Index3D(p.Dims.Ctx / p.Plan.BlockSize, p.Dims.Batch * p.Dims.Heads, 1), new Index3D(p.Plan.BlockSize / 16 * 32, 1, 1), MmaEmulation.SharedMemory(accelerator, p.Plan.BlockSize / 16));
}

/// <summary>64 features: eight m16n8 accumulators.</summary>
internal struct Features64 : IFeatureTiles
{
    private Tiles<Features32, Features32> tiles;

    /// <inheritdoc/>
    public readonly int Features => 64;

    /// <inheritdoc/>
    public void Scale(float low, float high) => tiles.Scale(low, high);

    /// <inheritdoc/>
    public void Accumulate<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, ArrayView<ushort> dense, ArrayView<uint> densePairs, long rowZero, long rowStep, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement =>
        tiles.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, dense, densePairs, rowZero, rowStep, feature);

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement =>
        tiles.Store<TElement>(pairs, index, eightRows, low, high, feature);
}
