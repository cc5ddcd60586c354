using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

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
    /// <summary>Writes the attention output and each row's log-sum-exp.</summary>
    public static void LaunchForward<TElement>(Accelerator accelerator, in FlashForwardParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var kernel = ForwardKernelFor<TElement>(p.Problem.Dims.HeadDim, p.Problem.Plan.BlockSize);
        KernelLoader.Get(accelerator, kernel)(accelerator.DefaultStream, TokenGroup.Config(accelerator, p.Problem.Dims, RowWalkBytes(p.Problem.Dims.HeadDim)), p);
    }

    /// <summary>The forward kernel for a head dim and block size: register tiles as wide as the head dim, key steps of 64 keys (32 for blocks of 32).</summary>
    public static Action<FlashForwardParams> ForwardKernelFor<TElement>(int headDim, int blockSize)
        where TElement : struct, IElement<ushort>, IMmaElement => TokenTiles.Specialise<FlashForwardParams, TElement>(nameof(ForwardKernel), headDim, RowSteps(blockSize));

    internal static void ForwardKernel<TElement, TQuery, TOutput, TSlab>(FlashForwardParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TQuery : struct, IQueryFragments
        where TOutput : struct, IOutputTiles
        where TSlab : struct, IScoreSlab
    {
        var problem = p.Problem;
        var dims = problem.Dims;
        var keys = default(TSlab).Keys;
        var group = new TokenGroup(problem, default(TOutput).Features, transposed: false);
        int g = group.G, t = group.T;
        var (keyRows, valueRows, share) = (group.KeyRows, group.ValueRows, group.Share);
        long queryAddress = AsyncCopy.ToGlobal(p.QueryAddress), keyAddress = AsyncCopy.ToGlobal(p.KeyAddress), valueAddress = AsyncCopy.ToGlobal(p.ValueAddress);

        // Q through the V buffer into registers, the first K alongside.
        var walk = group.Walk(keys);
        valueRows.Stage(p.QueryQuads, queryAddress, group.Token(group.FirstToken), group.TokenStep, XMath.Min(TokenGroup.Rows, dims.Ctx - group.FirstToken), share);
        if (!walk.Done)
        {
            keyRows.Stage(p.KeyQuads, keyAddress, group.Token(walk.Token), group.TokenStep, keys, share);
        }

        AsyncCopy.Commit();
        AsyncCopy.WaitAll();
        Group.Barrier();
        var query = default(TQuery);
        query.Load(valueRows, group.WarpRow, 0);

        var scaleLog2 = problem.Scale * Base2.Log2E;
        var output = default(TOutput);
        var slab = default(TSlab);
        var softmax = OnlineSoftmax.Start();
        while (!walk.Done)
        {
            // K of this step has landed, and no warp still reads V (or Q) from the buffer about to be refilled.
            AsyncCopy.WaitAll();
            Group.Barrier();
            valueRows.Stage(p.ValueQuads, valueAddress, group.Token(walk.Token), group.TokenStep, keys, share);
            AsyncCopy.Commit();

            // The next step's table lookups start here, so their latency hides behind S = Q . Kᵀ.
            var next = group.Next(walk, keys);

            // A warp without the block (blocks of 32) runs the step masked, adding exact zeros: branching around it left
            // ptxas two copies of every accumulator to merge at each step (the CPU accelerator needs it anyway: its warp
            // barriers, inside the mma emulation, went wrong when warps of a group diverged between group barriers).
            var block = group.Block(walk);
            var isFull = group.IsFull(block);
            slab.Compute<TElement, TQuery>(query, keyRows, 0);
            group.Mask(ref slab, problem, walk.Token, walk.TokenInBlock, block, isFull);
            softmax.Step(ref slab, scaleLog2, out var alphaLow, out var alphaHigh);
            output.Scale(alphaLow, alphaHigh);

            // V of this step has landed, and no warp still reads K: the next K loads while the warps compute P . V.
            AsyncCopy.WaitAll();
            Group.Barrier();
            if (!next.Done)
            {
                keyRows.Stage(p.KeyQuads, keyAddress, group.Token(next.Token), group.TokenStep, keys, share);
                AsyncCopy.Commit();
            }

            slab.Accumulate<TElement, TOutput>(ref output, valueRows, 0);

            walk = next;
        }

        var warpQuery = group.WarpToken;
        if (warpQuery >= dims.Ctx)
        {
            return;
        }

        softmax.Finish();
        output.Store<TElement>(p.OutputPairs, group.Token(warpQuery + g) + 2 * t, 8 * group.TokenStep, softmax.InverseLow, softmax.InverseHigh, 0);
        softmax.WriteLogSumExp(p.LogSumExp, dims, warpQuery + g, t);
    }
}
