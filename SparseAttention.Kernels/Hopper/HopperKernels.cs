using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

// The Hopper family (sm_90a): the fused forward on wgmma (the backward in HopperKernels.Backward.cs). It covers head
// dims 64 and 128 and blocks of 64 and 128 (key steps of 64). A group is one warpgroup owning 64 query rows, as in
// the portable forward, so masking and the online softmax are shared with it (the walk is RowWalk, one block row with
// its reads a block ahead); what differs is that S = Q . Kᵀ reads both operands from shared memory (no Q fragments in
// registers, no ldmatrix) and O += P . V reads V there, each product one wgmma chain waited for at its end.
// Versions (docs/benchmarks.md, H200, causal forward, fp16 D64 4k / bf16 D128 8k; portable 0.66 / 2.13 ms):
//   v1  one wgmma per statement, unswizzled core matrices: 1.02 / 3.77 ms. A chain per statement (no
//       serialization): 1.00 ms. 128-byte swizzle, copies along rows, the walk after the S chain: 0.576 / 1.640 ms.
//   v2  RowWalk, P . V in one statement with the rescaling, K and V double-buffered: 0.530 / 1.652 ms.
//   v3  the step before's P . V first (no output moves), buffers per head dim: 0.510 / 1.463 ms.
//   v4  no test for a missing block (the scores' moves at the mask join: loop 795 -> 744 instructions at D64),
//       staging addresses worked out once per thread (TileSource; -> 722) and tiles shifted from one base tile (the
//       shared window read once; -> 705): ncu 634 -> 557 us at D64, 1.78 -> 1.70 ms at D128; 0.485 / 1.358 ms.

/// <summary>The Hopper (sm_90) fused kernels and their launchers.</summary>
public static partial class HopperKernels
{
    /// <summary>Head dims the Hopper kernels are specialised for (fp16/bf16 inputs).</summary>
    public static IReadOnlyList<int> HeadDims { get; } = [64, 128];

    /// <summary>Block sizes the Hopper kernels walk (steps of 64 tokens).</summary>
    public static IReadOnlyList<int> BlockSizes { get; } = [64, 128];

    /// <summary>Whether the Hopper kernels cover this head dim and block size (fp16/bf16 inputs).</summary>
    public static bool Supports(int headDim, int blockSize) => HeadDims.Contains(headDim) && BlockSizes.Contains(blockSize);

    /// <summary>Writes the attention output and each row's log-sum-exp, as <see cref="FlashKernels.LaunchForward{TElement}"/> does (on an sm_90 device, or the CPU accelerator's twin).</summary>
    /// <exception cref="ArgumentException">The head dim or block size of <paramref name="p"/> is not one this kernel covers.</exception>
    public static void LaunchForward<TElement>(Accelerator accelerator, in FlashForwardParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var headDim = p.Problem.Dims.HeadDim;
        RequireSupported(p.Problem, nameof(p));
        var bytes = (TileCount(headDim) * CoreTile.Bytes(headDim)) + CoreTile.Alignment;
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
        var first = CoreTile.AlignedByte(group.FirstStagedByte);
        var tiles = new CoreTile(group.Shared, first);
        var query = tiles;
        var keys = new TileSource(p.KeyQuads, p.KeyAddress, group);
        var values = new TileSource(p.ValueQuads, p.ValueAddress, group);

        // Q stays staged for the whole walk (both S operands come from shared memory); K and V are staged a step
        // ahead (see KeyBuffers).
        var walk = group.RowWalk();
        query.Stage(new TileSource(p.QueryQuads, p.QueryAddress, group), group.FirstToken);
        if (!walk.Done)
        {
            StageStep(tiles, features, keys, values, walk.Token, 0, 0);
        }

        AsyncCopy.Commit();
        var scaleLog2 = problem.Scale * Base2.Log2E;
        var output = default(TOutput);
        var scores = default(WideScores);
        var softmax = OnlineSoftmax.Start();

        // Each step starts with the step before's P . V: the output's product first in the loop gets its registers
        // first, and keeps them (with S's product first, ptxas gave both products the same registers and moved the
        // output out and back every step). Before the first step, P is zeros and V this step's: it adds nothing.
        var probabilities = default(ValueOperands);
        float alphaLow = 1f, alphaHigh = 1f;
        int keyBuffer = 0, valueBuffer = 0, previous = 0;
        var walked = !walk.Done;
        var twoKeyBuffers = KeyBuffers(features) == 2;
        while (!walk.Done)
        {
            // This step's K and V (and, first, Q) have landed and are visible to wgmma, and every thread has finished
            // the step before (its products are complete when they return).
            Landed();
            output.Accumulate<TElement>(probabilities, alphaLow, alphaHigh, Values(tiles, features, previous));

            // The next step from registers (the loads it issues for the block after are first read a step later).
            var next = walk.Next(problem.Plan);
            int nextKeys = twoKeyBuffers ? 1 - keyBuffer : 0, nextValues = valueBuffer + 1 == ValueBuffers(features) ? 0 : valueBuffer + 1;
            if (twoKeyBuffers && !next.Done)
            {
                // Its K and V go where the step before last read them, before the barrier above.
                StageStep(tiles, features, keys, values, next.Token, nextKeys, nextValues);
                AsyncCopy.Commit();
            }

            scores.Compute<TElement>(query, Keys(tiles, features, keyBuffer), features);
            if (!twoKeyBuffers)
            {
                // One K buffer: the next K waits for every thread's S, and the next V for every thread's P . V above.
                Group.Barrier();
                if (!next.Done)
                {
                    StageStep(tiles, features, keys, values, next.Token, nextKeys, nextValues);
                    AsyncCopy.Commit();
                }
            }

            group.MaskBlock(ref scores, problem, walk.Token, walk.TokenInBlock, walk.Block, walk.IsFull);
            softmax.Step(ref scores, scaleLog2, out alphaLow, out alphaHigh);
            probabilities = scores.Operands<TElement>();
            walk = next;
            previous = valueBuffer;
            keyBuffer = nextKeys;
            valueBuffer = nextValues;
        }

        if (walked)
        {
            output.Accumulate<TElement>(probabilities, alphaLow, alphaHigh, Values(tiles, features, previous));
        }

        // A row with nothing to walk leaves its Q copies unawaited.
        AsyncCopy.WaitAll();
        softmax.Finish();
        var row = group.WarpToken + group.G;
        output.Store<TElement>(p.OutputPairs, group.Token(row) + 2 * group.T, 8 * group.TokenStep, softmax.InverseLow, softmax.InverseHigh, 0);
        softmax.WriteLogSumExp(p.LogSumExp, dims, row, group.T);
    }

    // The check of every launcher: the head dim and block size are ones the family covers.
    private static void RequireSupported(in FlashProblem problem, string parameter)
    {
        var (headDim, blockSize) = (problem.Dims.HeadDim, problem.Plan.BlockSize);
        if (!Supports(headDim, blockSize))
        {
            throw new ArgumentException($"the Hopper kernels take head dims 64 and 128 and blocks of 64 and 128; this call has head dim {headDim}, block size {blockSize}", parameter);
        }

        // TileSource takes the bytes between tokens as a 32-bit operand of its wide multiply.
        if (2L * problem.Dims.Heads * headDim > int.MaxValue)
        {
            throw new ArgumentException($"the Hopper kernels take fewer than 2^30 elements between tokens (heads x head dim); this call has heads {problem.Dims.Heads} x head dim {headDim}", parameter);
        }
    }

    // Buffers: at head dim 64, K has two and V three, so that a step's copies go where the step before last read and
    // one barrier a step suffices. At 128 that would leave room for two groups per SM; with one K buffer and two V
    // buffers three fit, and a second barrier (after S) frees them.
    private static int KeyBuffers(int features) => features == 128 ? 1 : 2;

    // V's buffers (see KeyBuffers).
    private static int ValueBuffers(int features) => features == 128 ? 2 : 3;

    // Staged tiles of the forward: Q, then K's buffers, then V's.
    private static int TileCount(int features) => 1 + KeyBuffers(features) + ValueBuffers(features);

    // K buffer `buffer` of tiles of `features` features, counted from the base tile (Q).
    private static CoreTile Keys(in CoreTile tiles, int features, int buffer) => tiles.Shifted((1 + buffer) * CoreTile.Bytes(features));

    // V buffer `buffer`.
    private static CoreTile Values(in CoreTile tiles, int features, int buffer) =>
        tiles.Shifted((1 + KeyBuffers(features) + buffer) * CoreTile.Bytes(features));

    // Starts copying the K and V rows of the step at key `token` into buffers `keyBuffer` and `valueBuffer`.
    private static void StageStep(in CoreTile tiles, int features, in TileSource keys, in TileSource values, int token, int keyBuffer, int valueBuffer)
    {
        Keys(tiles, features, keyBuffer).Stage(keys, token);
        Values(tiles, features, valueBuffer).Stage(values, token);
    }

    // This thread's copies have landed and are visible to wgmma's async proxy; then every thread's are.
    private static void Landed()
    {
        AsyncCopy.WaitAll();
        Wgmma.ProxyFence();
        Group.Barrier();
    }
}
