using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;
using Output128 = SparseAttention.Kernels.Fused.Outputs<SparseAttention.Kernels.Fused.Output64, SparseAttention.Kernels.Fused.Output64>;
using Output32 = SparseAttention.Kernels.Fused.Outputs<SparseAttention.Kernels.Fused.Output16, SparseAttention.Kernels.Fused.Output16>;
using Query128 = SparseAttention.Kernels.Fused.QueryChunks<SparseAttention.Kernels.Fused.Query64, SparseAttention.Kernels.Fused.Query64>;
using Query32 = SparseAttention.Kernels.Fused.QueryChunks<SparseAttention.Kernels.Fused.QueryChunk, SparseAttention.Kernels.Fused.QueryChunk>;
using Slab32 = SparseAttention.Kernels.Fused.Slab<SparseAttention.Kernels.Fused.ScoreTile, SparseAttention.Kernels.Fused.ScoreTile>;
using Slab64 = SparseAttention.Kernels.Fused.Slab<SparseAttention.Kernels.Fused.Slab<SparseAttention.Kernels.Fused.ScoreTile, SparseAttention.Kernels.Fused.ScoreTile>, SparseAttention.Kernels.Fused.Slab<SparseAttention.Kernels.Fused.ScoreTile, SparseAttention.Kernels.Fused.ScoreTile>>;

namespace SparseAttention.Kernels.Fused;

// The fused forward (v6, FlashAttention-2's structure for block-sparse layouts): a group of four warps owns 64 query
// rows, 16 per warp. Q goes through shared memory once and stays in registers as mma A fragments. Per key step (64 keys,
// or 32 for blocks of 32) the group stages K and V with cp.async into rows padded by 16 bytes, one buffer each, V loading
// while the warps compute S = Q . Kᵀ and the next K while they compute O += P . V. The online softmax runs once per step;
// P goes from the S accumulators to the A operand of P . V without leaving the registers; V is read by ldmatrix.trans.
// Only partial blocks (and blocks the decoding rule reaches) are masked.

/// <summary>The fused forward and its launcher.</summary>
public static partial class FlashKernels
{
    /// <summary>Query rows of one group of the forward.</summary>
    public const int ForwardRowsPerGroup = 64;

    private const int ForwardWarps = ForwardRowsPerGroup / 16;

    /// <summary>Writes the attention output and each row's log-sum-exp.</summary>
    public static void LaunchForward<TElement>(Accelerator accelerator, in FlashForwardParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var dims = p.Problem.Dims;
        var kernel = ForwardKernelFor<TElement>(dims.HeadDim, p.Problem.Plan.BlockSize);
        var emulation = accelerator.AcceleratorType == AcceleratorType.Cuda ? 0 : EmulationBytes;
        var shared = SharedMemoryConfig.RequestDynamic<byte>(emulation + 2 * ForwardRowsPerGroup * 4 * StagedRows.RowWords(dims.HeadDim));
        var config = new KernelConfig(new Index3D((dims.Ctx + ForwardRowsPerGroup - 1) / ForwardRowsPerGroup, dims.Batch * dims.Heads, 1), new Index3D(32 * ForwardWarps, 1, 1), shared);
        KernelLoader.Get(accelerator, kernel)(accelerator.DefaultStream, config, p);
    }

    /// <summary>The forward kernel for a head dim and block size: register tiles as wide as the head dim, key steps of 64 keys (32 for blocks of 32).</summary>
    public static Action<FlashForwardParams> ForwardKernelFor<TElement>(int headDim, int blockSize)
        where TElement : struct, IElement<ushort>, IMmaElement => (headDim, blockSize) switch
        {
            (32, 32) => ForwardKernel<TElement, Query32, Output32, Slab32>,
            (32, _) => ForwardKernel<TElement, Query32, Output32, Slab64>,
            (64, 32) => ForwardKernel<TElement, Query64, Output64, Slab32>,
            (64, _) => ForwardKernel<TElement, Query64, Output64, Slab64>,
            (128, 32) => ForwardKernel<TElement, Query128, Output128, Slab32>,
            (128, _) => ForwardKernel<TElement, Query128, Output128, Slab64>,
            _ => throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the fused kernels take head dims 32, 64 and 128"),
        };

    // The CPU accelerator's mma emulation swaps fragments through the start of the dynamic shared memory.
    private const int EmulationBytes = ForwardWarps * 32 * 6 * 4;

    internal static void ForwardKernel<TElement, TQuery, TOutput, TSlab>(FlashForwardParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TQuery : struct, IQueryFragments
        where TOutput : struct, IOutputTiles
        where TSlab : struct, IScoreSlab
    {
        var problem = p.Problem;
        var dims = problem.Dims;
        var plan = problem.Plan;
        var features = default(TOutput).Features;
        var keys = default(TSlab).Keys;
        int warp = Group.IdxX >> 5, lane = Group.IdxX & 31, g = lane >> 2, t = lane & 3;
        int n = Grid.IdxY / dims.Heads, h = Grid.IdxY - n * dims.Heads;
        var layoutHead = plan.LayoutHead(h);
        var firstQuery = Grid.IdxX * ForwardRowsPerGroup;
        var warpQuery = firstQuery + 16 * warp;

        // Blocks of 32: warps 0-1 are block row A, warps 2-3 block row B. Larger blocks: one row, all warps.
        var rowA = firstQuery / plan.BlockSize;
        var split = plan.BlockSize < ForwardRowsPerGroup;
        var inRowB = split && warp >= 2;
        var rowInBlock = warpQuery - (rowA + (inRowB ? 1 : 0)) * plan.BlockSize;

        var shared = SharedMemory.GetDynamic<uint>();
        var tileBytes = ForwardRowsPerGroup * 4 * StagedRows.RowWords(features);
        var firstByte = CudaAsm.IsSupported ? 0 : EmulationBytes;
        var keyRows = new StagedRows(shared, firstByte, features);
        var valueRows = new StagedRows(shared, firstByte + tileBytes, features);
        long tokenStep = (long)dims.Heads * features, headZero = dims.Index(n, 0, h, 0);
        var share = new StageShare(features);
        long queryAddress = AsyncCopy.ToGlobal(p.QueryAddress), keyAddress = AsyncCopy.ToGlobal(p.KeyAddress), valueAddress = AsyncCopy.ToGlobal(p.ValueAddress);

        // Q through the V buffer into registers, the first K alongside.
        var walk = KeyWalk.Start(plan, layoutHead, keys, rowA, split ? rowA + 1 : rowA);
        var queryRows = XMath.Min(ForwardRowsPerGroup, dims.Ctx - firstQuery);
        valueRows.Stage(p.QueryQuads, queryAddress, headZero + firstQuery * tokenStep, tokenStep, queryRows, share);
        if (!walk.Done)
        {
            keyRows.Stage(p.KeyQuads, keyAddress, headZero + walk.Key * tokenStep, tokenStep, keys, share);
        }

        AsyncCopy.Commit();
        AsyncCopy.WaitAll();
        Group.Barrier();
        var query = default(TQuery);
        query.Load(valueRows, 16 * warp, 0);

        var scaleLog2 = problem.Scale * Base2.Log2E;
        var output = default(TOutput);
        var slab = default(TSlab);
        float maxLow = float.NegativeInfinity, maxHigh = float.NegativeInfinity, sumLow = 0f, sumHigh = 0f;
        while (!walk.Done)
        {
            // K of this step has landed, and no warp still reads V (or Q) from the buffer about to be refilled.
            AsyncCopy.WaitAll();
            Group.Barrier();
            valueRows.Stage(p.ValueQuads, valueAddress, headZero + walk.Key * tokenStep, tokenStep, keys, share);
            AsyncCopy.Commit();

            // The next step's table lookups start here, so their latency hides behind S = Q . Kᵀ.
            var next = walk.Next(plan, layoutHead, keys);

            // On the CPU accelerator a warp without the block runs the step masked: its warp barriers (inside the mma
            // emulation) went wrong when warps of a group diverged between group barriers.
            var block = inRowB ? walk.BlockB : walk.BlockA;
            var computes = block >= 0 || !CudaAsm.IsSupported;
            if (computes)
            {
                var isFull = block >= 0 && plan.BlockIsFull[block] != 0;
                slab.Compute<TElement, TQuery>(query, keyRows, 0);
                if (block < 0)
                {
                    slab.MaskAll();
                }
                else if (isFull && walk.Key + keys <= problem.AutoregressAtKey)
                {
                    slab.Scale(scaleLog2);
                }
                else
                {
                    slab.ScaleAndMask(scaleLog2, new SlabSite(plan, (long)block * plan.WordsPerBlock, isFull, rowInBlock, walk.KeyInBlock, warpQuery, walk.Key, problem.AutoregressAtKey), 0);
                }

                // Online softmax, once per step: rescale what is summed so far where a row's max grows; a row still empty keeps 0.
                float newLow = XMath.Max(maxLow, ScoreTile.QuadMax(slab.LaneMaxLow())), newHigh = XMath.Max(maxHigh, ScoreTile.QuadMax(slab.LaneMaxHigh()));
                float baseLow = newLow == float.NegativeInfinity ? 0f : newLow, baseHigh = newHigh == float.NegativeInfinity ? 0f : newHigh;
                float alphaLow = Base2.Exp2(maxLow - baseLow), alphaHigh = Base2.Exp2(maxHigh - baseHigh);
                slab.Exp2Minus(baseLow, baseHigh);
                sumLow = sumLow * alphaLow + slab.PartialSumLow();
                sumHigh = sumHigh * alphaHigh + slab.PartialSumHigh();
                maxLow = newLow;
                maxHigh = newHigh;
                output.Scale(alphaLow, alphaHigh);
            }

            // V of this step has landed, and no warp still reads K: the next K loads while the warps compute P . V.
            AsyncCopy.WaitAll();
            Group.Barrier();
            if (!next.Done)
            {
                keyRows.Stage(p.KeyQuads, keyAddress, headZero + next.Key * tokenStep, tokenStep, keys, share);
                AsyncCopy.Commit();
            }

            if (computes)
            {
                slab.Accumulate<TElement, TOutput>(ref output, valueRows, 0);
            }

            walk = next;
        }

        if (warpQuery >= dims.Ctx)
        {
            return;
        }

        sumLow = ScoreTile.QuadSum(sumLow);
        sumHigh = ScoreTile.QuadSum(sumHigh);
        output.Store<TElement>(p.OutputPairs, dims.Index(n, warpQuery + g, h, 2 * t), 8 * tokenStep, sumLow > 0f ? 1f / sumLow : 0f, sumHigh > 0f ? 1f / sumHigh : 0f, 0);
        if (t == 0)
        {
            p.LogSumExp[problem.RowIndex(Grid.IdxY, warpQuery + g)] = sumLow > 0f ? maxLow + XMath.Log2(sumLow) : float.PositiveInfinity;
            p.LogSumExp[problem.RowIndex(Grid.IdxY, warpQuery + g + 8)] = sumHigh > 0f ? maxHigh + XMath.Log2(sumHigh) : float.PositiveInfinity;
        }
    }
}

/// <summary>Q fragments of 64 features.</summary>
internal struct Query64 : IQueryFragments
{
    private QueryChunks<Query32, Query32> chunks;

    /// <inheritdoc/>
    public readonly int Features => 64;

    /// <inheritdoc/>
    public void Load(in StagedRows rows, int row, int feature) => chunks.Load(rows, row, feature);

    /// <inheritdoc/>
    public readonly void Score<TElement>(ref ScoreTile tile, in StagedRows keys, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement => chunks.Score<TElement>(ref tile, keys, key, feature);
}

/// <summary>Output accumulator of 64 features.</summary>
internal struct Output64 : IOutputTiles
{
    private Outputs<Output32, Output32> tiles;

    /// <inheritdoc/>
    public readonly int Features => 64;

    /// <inheritdoc/>
    public void Scale(float low, float high) => tiles.Scale(low, high);

    /// <inheritdoc/>
    public void Accumulate<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, in StagedRows values, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement => tiles.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, values, key, feature);

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement => tiles.Store<TElement>(pairs, index, eightRows, low, high, feature);
}
