using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

// The Hopper family (sm_90a): the fused forward on wgmma. It covers head dims 64 and 128 and blocks of 64 and 128 (key
// steps of 64); the backward stays on the portable mma.sync kernels, which read the same output and log-sum-exp. A group
// is one warpgroup owning 64 query rows, as in the portable forward, so masking and the online softmax are shared
// with it (the walk is RowWalk, one block row with its reads a block ahead); what differs is that S = Q . Kᵀ reads both operands from shared memory (no Q fragments in registers,
// no ldmatrix) and O += P . V reads V there, each product one wgmma chain waited for at its end.
// Versions (docs/benchmarks.md, H200, causal fp16 D64 4k forward):
//   v1  one wgmma per statement, unswizzled core matrices: 1.02 ms (portable 0.65). A chain per statement (no
//       serialization): 1.00 ms. 128-byte swizzle, copies along rows, the walk after the S chain: 0.70 ms under ncu
//       (the portable forward: 0.80 ms there).

/// <summary>The Hopper (sm_90) fused kernels and their launchers.</summary>
public static class HopperKernels
{
    // Staged tiles of the forward: Q, two of K, two of V.
    private const int TileCount = 5;

    /// <summary>Head dims the Hopper forward is specialised for (fp16/bf16 inputs).</summary>
    public static IReadOnlyList<int> HeadDims { get; } = [64, 128];

    /// <summary>Block sizes the Hopper forward walks (steps of 64 keys).</summary>
    public static IReadOnlyList<int> BlockSizes { get; } = [64, 128];

    /// <summary>Whether the Hopper forward covers this head dim and block size (fp16/bf16 inputs).</summary>
    public static bool Supports(int headDim, int blockSize) => HeadDims.Contains(headDim) && BlockSizes.Contains(blockSize);


    /// <summary>Writes the attention output and each row's log-sum-exp, as <see cref="FlashKernels.LaunchForward{TElement}"/> does (on an sm_90 device, or the CPU accelerator's twin).</summary>
    /// <exception cref="ArgumentException">The head dim or block size of <paramref name="p"/> is not one this kernel covers.</exception>
    public static void LaunchForward<TElement>(Accelerator accelerator, in FlashForwardParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var headDim = p.Problem.Dims.HeadDim;
        if (!Supports(headDim, p.Problem.Plan.BlockSize))
        {
            throw new ArgumentException($"the Hopper forward takes head dims 64 and 128 and blocks of 64 and 128; this call has head dim {headDim}, block size {p.Problem.Plan.BlockSize}", nameof(p));
        }

        var bytes = (TileCount * CoreTile.Bytes(headDim)) + CoreTile.Alignment;
        KernelLoader.Get(accelerator, ForwardKernelFor<TElement>(headDim), bytes)(accelerator.DefaultStream, TokenGroup.Config(accelerator, p.Problem.Dims, bytes), p);
    }

    /// <summary>The forward kernel for a head dim: accumulators as wide as it.</summary>
    public static Action<FlashForwardParams> ForwardKernelFor<TElement>(int headDim)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        Action<FlashForwardParams> kernel = headDim switch
        {
            64 => ForwardKernel<TElement, WideOutput64>,
            128 => ForwardKernel<TElement, WideOutput128>,
            _ => throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the Hopper forward takes head dims 64 and 128"),
        };

        AsyncCopy.RequireCovered(TokenGroup.Threads, headDim, CoreTile.Rows);
        return kernel;
    }

    internal static void ForwardKernel<TElement, TOutput>(FlashForwardParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TOutput : struct, IWideOutput
    {
        var problem = p.Problem;
        var dims = problem.Dims;
        var features = default(TOutput).Features;
        var group = new TokenGroup(problem, features, transposed: false);
        var tileBytes = CoreTile.Bytes(features);
        var first = CoreTile.AlignedByte(group.FirstStagedByte);
        var query = new CoreTile(group.Shared, first);
        var share = group.Share;
        long keyAddress = AsyncCopy.ToGlobal(p.KeyAddress), valueAddress = AsyncCopy.ToGlobal(p.ValueAddress);

        // Q stays staged for the whole walk (both S operands come from shared memory). K and V have two buffers each:
        // a step reads one pair while the next step's copies land in the other, so each copy has a whole step to land.
        var walk = group.RowWalk();
        query.Stage(p.QueryQuads, AsyncCopy.ToGlobal(p.QueryAddress), group.Token(group.FirstToken), group.TokenStep, share);
        if (!walk.Done)
        {
            var firstToken = group.Token(walk.Token);
            Keys(group, first, tileBytes, 0).Stage(p.KeyQuads, keyAddress, firstToken, group.TokenStep, share);
            Values(group, first, tileBytes, 0).Stage(p.ValueQuads, valueAddress, firstToken, group.TokenStep, share);
        }

        AsyncCopy.Commit();
        var scaleLog2 = problem.Scale * Base2.Log2E;
        var output = default(TOutput);
        var scores = default(WideScores);
        var softmax = OnlineSoftmax.Start();
        var buffer = 0;
        while (!walk.Done)
        {
            // This step's K and V (and, first, Q) have landed and are visible to wgmma, and no warp still reads the
            // other buffers (the last step's products completed before it passed this barrier).
            Landed();

            // The next step from registers (the loads it issues for the block after are first read a step later),
            // and its K and V into the other buffers.
            var next = walk.Next(problem.Plan);
            if (!next.Done)
            {
                var nextToken = group.Token(next.Token);
                Keys(group, first, tileBytes, 1 - buffer).Stage(p.KeyQuads, keyAddress, nextToken, group.TokenStep, share);
                Values(group, first, tileBytes, 1 - buffer).Stage(p.ValueQuads, valueAddress, nextToken, group.TokenStep, share);
                AsyncCopy.Commit();
            }

            scores.Compute<TElement>(query, Keys(group, first, tileBytes, buffer), features);
            group.Mask(ref scores, problem, walk.Token, walk.TokenInBlock, walk.Block, walk.IsFull);
            softmax.Step(ref scores, scaleLog2, out var alphaLow, out var alphaHigh);
            scores.Accumulate<TElement, TOutput>(ref output, alphaLow, alphaHigh, Values(group, first, tileBytes, buffer));
            walk = next;
            buffer = 1 - buffer;
        }

        // A row with nothing to walk leaves its Q copies unawaited.
        AsyncCopy.WaitAll();
        softmax.Finish();
        var row = group.WarpToken + group.G;
        output.Store<TElement>(p.OutputPairs, group.Token(row) + 2 * group.T, 8 * group.TokenStep, softmax.InverseLow, softmax.InverseHigh, 0);
        softmax.WriteLogSumExp(p.LogSumExp, dims, row, group.T);
    }

    // K buffer `buffer` (0 or 1): Q's tile first, then the two K tiles, then the two V tiles.
    private static CoreTile Keys(in TokenGroup group, int first, int tileBytes, int buffer) => new(group.Shared, first + ((1 + buffer) * tileBytes));

    // V buffer `buffer`.
    private static CoreTile Values(in TokenGroup group, int first, int tileBytes, int buffer) => new(group.Shared, first + ((3 + buffer) * tileBytes));

    // This thread's copies have landed and are visible to wgmma's async proxy; then every thread's are.
    private static void Landed()
    {
        AsyncCopy.WaitAll();
        Wgmma.ProxyFence();
        Group.Barrier();
    }
}
