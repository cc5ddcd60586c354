namespace SparseAttention.Kernels.Fused;

// Fused block-sparse attention (FlashAttention-2's structure): scores and probabilities live only in a warp's
// registers. Each kernel's group owns 64 tokens of one (sequence, head) (TokenGroup): the forward and dQ walk block
// rows (FlashKernels.Forward.cs, FlashKernels.QueryGrad.cs), dK/dV walks block columns (FlashKernels.Backward.cs). The
// m16n8 accumulators of S are already the A fragments of P for P . V, so P never leaves the registers.
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
//       structure (FlashKernels.QueryGrad.cs), Q and dO in registers. dK/dV on the transposed structure
//       (FlashKernels.Backward.cs): 64 keys per group, K and V in registers, Q, dO, log-sum-exp and delta staged
//       (causal D64 fwd+bwd 10.80 -> 4.13 ms). Then one fma per exponential and delta by 16-byte quads (-> 3.68 ms).
//   v7  every ldmatrix of a product issued before its first mma (ptxas keeps them in program order, so each load had
//       stalled its mma for its whole latency), and S = Q . Kᵀ 16 features at a time across the slab's keys (eight
//       independent accumulators per step instead of two chains): causal D64 0.95 / 3.68 -> 0.90 / 3.35 ms, bf16 D128
//       8k 3.53 / 13.97 -> 2.94 / 11.87 ms. Then the PTX stage drops the CPU twins (CUDA 13's JIT had put a WARPSYNC
//       before every HMMA), a warp without the step's block runs it masked instead of branching around it, and the
//       block's fullness is read before the mma: causal D64 -> 0.71 / 2.79 ms.
//   v8  the cp.async passes of a staging written out (nothing unrolled the loop: 12 instructions per copy), and launch
//       bounds for three groups per SM of the D128 forward and the D64 dK/dV: causal D64 -> 0.65 / 2.49 ms, bf16 D128
//       8k 2.60 / 9.81 -> 2.09 / 8.94 ms.

/// <summary>The fused attention kernels and their launchers.</summary>
public static partial class FlashKernels
{
    /// <summary>Head dims the fused kernels are specialised for (fp16/bf16 inputs).</summary>
    public static IReadOnlyList<int> HeadDims { get; } = [32, 64, 128];

    /// <summary>Block sizes the fused kernels walk.</summary>
    public static IReadOnlyList<int> BlockSizes { get; } = [32, 64, 128];

    /// <summary>Whether the fused kernels cover this head dim and block size (fp16/bf16 inputs).</summary>
    public static bool Supports(int headDim, int blockSize) => HeadDims.Contains(headDim) && BlockSizes.Contains(blockSize);

    // Key steps of the row walks (forward, dQ): 64 keys, or 32 for blocks of 32, whose group walks two block rows.
    private static int RowSteps(int blockSize) => blockSize < 64 ? 32 : 64;

    // Query steps of the column walk (dK, dV): 32 for blocks of 32 (a step never spans two block rows), and 32 at head
    // dim 128, where the column walk holds K, V, dK and dV in registers (64 would need far more than 255; 32 leaves an
    // 8-byte stack frame, but 16, which leaves none, made the H200's D128 backward 16 % slower); 64 otherwise.
    private static int ColumnSteps(int headDim, int blockSize) => blockSize < 64 || headDim > 64 ? 32 : 64;

    // Staged bytes of the row walks: K and V tiles of 64 rows.
    private static int RowWalkBytes(int headDim) => 2 * TokenGroup.TileBytes(headDim, TokenGroup.Rows);

    // Where the column walk's terms start: K and V tiles of 64 rows before the walk, then the same memory as two buffers
    // of Q and dO tiles of one step; the terms follow.
    private static int ColumnTermsOffset(int headDim, int steps) => Math.Max(RowWalkBytes(headDim), 4 * TokenGroup.TileBytes(headDim, steps));

    // Staged bytes of the column walk: the above and two buffers of the step's log-sum-exp and delta.
    private static int ColumnWalkBytes(int headDim, int steps) => ColumnTermsOffset(headDim, steps) + 2 * StagedTerms.Bytes(steps);
}
