using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Features128 = SparseAttention.Kernels.Fused.Tiles<SparseAttention.Kernels.Fused.Features64, SparseAttention.Kernels.Fused.Features64>;
using Features32 = SparseAttention.Kernels.Fused.Tiles<SparseAttention.Kernels.Fused.Tiles<SparseAttention.Kernels.Fused.Tile8, SparseAttention.Kernels.Fused.Tile8>, SparseAttention.Kernels.Fused.Tiles<SparseAttention.Kernels.Fused.Tile8, SparseAttention.Kernels.Fused.Tile8>>;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

// Fused block-sparse attention (FlashAttention-2 style): the scores and probabilities of a 16x16 tile live only in a
// warp's registers. One group per block row (forward, dQ) or block column (dK, dV) and head; one warp per 16 of its
// tokens. The m16n8 accumulators of S are already the A fragments of P for P . V, so P never leaves the registers.
// Softmax in base 2: x = s * scale * log2(e), P = exp2(x - lse), lse stored per row in those units.
// Versions:
//   v1  warps independent, fragments loaded from global memory (L1/L2), 16-key chunks, online max/sum per chunk,
//       whole chunks no lane keeps skipped, full blocks skip the mask, deterministic backward without atomics.
//       Accumulator tiles as Ref<float> fields: ptxas kept them on a 752-byte stack (H200: all 4k forward 18.8 ms).
//   v2  tiles as plain float fields copied into Ref locals around each mma: no stack frame (4.1 ms).
//   v3  B fragments as 4-byte pairs transposed by movmatrix instead of 2-byte loads: same speed (latency-bound).
//   (v4 changed the permutation and the host side only; numbers in docs/benchmarks.md.)
//   v5  lane arithmetic by shifts and masks (ILGPU writes x / 4 as an integer division): same speed within noise.

/// <summary>The fused attention kernels and their launchers.</summary>
public static partial class FlashKernels
{
    /// <summary>Head dims the fused kernels are specialised for (fp16/bf16 inputs).</summary>
    public static IReadOnlyList<int> HeadDims { get; } = [32, 64, 128];

    /// <summary>Block sizes the fused kernels walk.</summary>
    public static IReadOnlyList<int> BlockSizes { get; } = [32, 64, 128];

    /// <summary>Whether the fused kernels cover this head dim and block size (fp16/bf16 inputs).</summary>
    public static bool Supports(int headDim, int blockSize) => HeadDims.Contains(headDim) && BlockSizes.Contains(blockSize);

    /// <summary>Writes the attention output and each row's log-sum-exp.</summary>
    public static void LaunchForward<TElement>(Accelerator accelerator, in FlashForwardParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var kernel = KernelsFor<TElement>(p.Problem.Dims.HeadDim).Forward;
        KernelLoader.Get(accelerator, kernel)(accelerator.DefaultStream, Config(accelerator, p.Problem), p);
    }

    // The forward, dQ and dK/dV kernels specialised for a head dim: their accumulators are register tiles of that width.
    private static (Action<FlashForwardParams> Forward, Action<FlashQueryGradParams> QueryGrad, Action<FlashKeyValueGradParams> KeyValueGrad) KernelsFor<TElement>(int headDim)
        where TElement : struct, IElement<ushort>, IMmaElement => headDim switch
        {
            32 => (ForwardKernel<TElement, Features32>, QueryGradKernel<TElement, Features32>, KeyValueGradKernel<TElement, Features32>),
            64 => (ForwardKernel<TElement, Features64>, QueryGradKernel<TElement, Features64>, KeyValueGradKernel<TElement, Features64>),
            128 => (ForwardKernel<TElement, Features128>, QueryGradKernel<TElement, Features128>, KeyValueGradKernel<TElement, Features128>),
            _ => throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the fused kernels take head dims 32, 64 and 128"),
        };

    // One group per block row or column and (sequence, head); a warp per 16 tokens of it.
    private static KernelConfig Config(Accelerator accelerator, in FlashProblem p) =>
        new(new Index3D(p.Dims.Ctx / p.Plan.BlockSize, p.Dims.Batch * p.Dims.Heads, 1), new Index3D(p.Plan.BlockSize / 16 * 32, 1, 1), MmaEmulation.SharedMemory(accelerator, p.Plan.BlockSize / 16));

    internal static void ForwardKernel<TElement, TTiles>(FlashForwardParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TTiles : struct, IFeatureTiles
    {
        var problem = p.Problem;
        var warp = new FlashWarp(problem, transposed: false);
        int g = warp.G, t = warp.T;
        var dims = problem.Dims;
        var scaleLog2 = problem.Scale * Base2.Log2E;
        var output = default(TTiles);
        var scores = default(ScoreTile);
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u;
        float maxLow = float.NegativeInfinity, maxHigh = float.NegativeInfinity, sumLow = 0f, sumHigh = 0f;
        var queryPair = dims.Index(warp.N, warp.First + g, warp.H, 2 * t) >> 1;
        for (var entry = warp.Start; entry < warp.End; entry++)
        {
            var block = warp.Block(entry);
            for (var chunk = 0; chunk < problem.Plan.BlockSize; chunk += 16)
            {
                var key = block.Other + chunk;
                if (!warp.Keeps(problem, block, chunk, out var allowed))
                {
                    continue;
                }

                scores.Compute<TElement>(p.QueryPairs, queryPair, p.KeyPairs, dims.Index(warp.N, key + g, warp.H, 2 * t) >> 1, warp.EightRowPairs, dims.HeadDim);
                scores.ScaleAndMask(scaleLog2, allowed);

                // Online softmax: rescale what is summed so far whenever a row's max grows; a row still empty keeps 0.
                float newLow = XMath.Max(maxLow, scores.MaxLow()), newHigh = XMath.Max(maxHigh, scores.MaxHigh());
                float baseLow = newLow == float.NegativeInfinity ? 0f : newLow, baseHigh = newHigh == float.NegativeInfinity ? 0f : newHigh;
                float alphaLow = Base2.Exp2(maxLow - baseLow), alphaHigh = Base2.Exp2(maxHigh - baseHigh);
                scores.Exp2Minus(baseLow, baseHigh, 0f, 0f, 0f, 0f);
                sumLow = sumLow * alphaLow + scores.PartialSumLow();
                sumHigh = sumHigh * alphaHigh + scores.PartialSumHigh();
                maxLow = newLow;
                maxHigh = newHigh;
                output.Scale(alphaLow, alphaHigh);
                scores.ToOperand<TElement>(ref a0, ref a1, ref a2, ref a3);
                output.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, p.Value, p.ValuePairs, dims.Index(warp.N, key, warp.H, 0), warp.TokenStep, 0);
            }
        }

        sumLow = ScoreTile.QuadSum(sumLow);
        sumHigh = ScoreTile.QuadSum(sumHigh);
        output.Store<TElement>(p.OutputPairs, dims.Index(warp.N, warp.First + g, warp.H, 2 * t), 8 * warp.TokenStep, sumLow > 0f ? 1f / sumLow : 0f, sumHigh > 0f ? 1f / sumHigh : 0f, 0);
        if (t == 0)
        {
            p.LogSumExp[problem.RowIndex(Grid.IdxY, warp.First + g)] = sumLow > 0f ? maxLow + XMath.Log2(sumLow) : float.PositiveInfinity;
            p.LogSumExp[problem.RowIndex(Grid.IdxY, warp.First + g + 8)] = sumHigh > 0f ? maxHigh + XMath.Log2(sumHigh) : float.PositiveInfinity;
        }
    }
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
