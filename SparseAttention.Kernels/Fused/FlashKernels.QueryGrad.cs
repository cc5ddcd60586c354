using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

// dQ on the forward's structure (v6): a group of four warps owns 64 query rows; Q and dO go through shared memory once
// into registers; per key step the group stages K and V with cp.async. Each warp recomputes P = exp2(S - lse) for its 16
// rows, turns it into dS = P * (dP - delta) one 16-key tile at a time (dP = dO . Vᵀ), and adds dS . K (K by
// ldmatrix.trans) to dQ in registers. The next V loads while the warps compute dS . K, the next K once no warp reads K.
// Deterministic: each dQ element is summed by one lane in key order.

/// <summary>The fused dQ kernel.</summary>
public static partial class FlashKernels
{
    /// <summary>The dQ kernel for a head dim and block size (register tiles as wide as the head dim, the forward's key steps).</summary>
    public static Action<FlashQueryGradParams> QueryGradKernelFor<TElement>(int headDim, int blockSize)
        where TElement : struct, IElement<ushort>, IMmaElement => TokenTiles.Specialise<FlashQueryGradParams, TElement>(nameof(QueryGradKernel), headDim, RowSteps(blockSize));

    internal static void QueryGradKernel<TElement, TQuery, TOutput, TSlab>(FlashQueryGradParams p)
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
        long keyAddress = AsyncCopy.ToGlobal(p.Inputs.KeyAddress), valueAddress = AsyncCopy.ToGlobal(p.Inputs.ValueAddress);

        // Q through the V tile and dO through the K tile into registers; then the first K and V.
        var rows = XMath.Min(TokenGroup.Rows, dims.Ctx - group.FirstToken);
        valueRows.Stage(p.Inputs.QueryQuads, AsyncCopy.ToGlobal(p.Inputs.QueryAddress), group.Token(group.FirstToken), group.TokenStep, rows, share);
        keyRows.Stage(p.Inputs.OutputGradQuads, AsyncCopy.ToGlobal(p.Inputs.OutputGradAddress), group.Token(group.FirstToken), group.TokenStep, rows, share);
        AsyncCopy.Commit();
        AsyncCopy.WaitAll();
        Group.Barrier();
        var query = default(TQuery);
        var outputGrad = default(TQuery);
        query.Load(valueRows, group.WarpRow, 0);
        outputGrad.Load(keyRows, group.WarpRow, 0);
        var walk = group.Walk(keys);
        Group.Barrier();
        if (!walk.Done)
        {
            keyRows.Stage(p.Inputs.KeyQuads, keyAddress, group.Token(walk.Token), group.TokenStep, keys, share);
            valueRows.Stage(p.Inputs.ValueQuads, valueAddress, group.Token(walk.Token), group.TokenStep, keys, share);
            AsyncCopy.Commit();
        }

        // A warp past ctx (blocks of 32, odd block count) has no rows: it reads no log-sum-exp or delta.
        var inside = group.WarpToken < dims.Ctx;
        var row = dims.RowIndex(Grid.IdxY, group.WarpToken + g);
        float lseLow = inside ? p.LogSumExp[row] : 0f, lseHigh = inside ? p.LogSumExp[row + 8] : 0f;
        float deltaLow = inside ? p.Delta[row] : 0f, deltaHigh = inside ? p.Delta[row + 8] : 0f;
        var scaleLog2 = problem.Scale * Base2.Log2E;
        var queryGrad = default(TOutput);
        var slab = default(TSlab);
        while (!walk.Done)
        {
            AsyncCopy.WaitAll();
            Group.Barrier();
            var next = group.Next(walk, keys);

            // As in the forward, a warp without the block runs the step masked.
            var block = group.Block(walk);
            var isFull = group.IsFull(block);
            slab.Compute<TElement, TQuery>(query, keyRows, 0);
            group.Mask(ref slab, problem, walk.Token, walk.TokenInBlock, block, isFull);
            slab.Exp2Minus(scaleLog2, lseLow, lseHigh);
            slab.SoftmaxGrad<TElement, TQuery>(outputGrad, valueRows, 0, deltaLow, deltaHigh);

            // No warp reads V any more: the next V loads while the warps add dS . K.
            Group.Barrier();
            if (!next.Done)
            {
                valueRows.Stage(p.Inputs.ValueQuads, valueAddress, group.Token(next.Token), group.TokenStep, keys, share);
                AsyncCopy.Commit();
            }

            slab.Accumulate<TElement, TOutput>(ref queryGrad, keyRows, 0);

            Group.Barrier();
            if (!next.Done)
            {
                keyRows.Stage(p.Inputs.KeyQuads, keyAddress, group.Token(next.Token), group.TokenStep, keys, share);
                AsyncCopy.Commit();
            }

            walk = next;
        }

        if (inside)
        {
            queryGrad.Store<TElement>(p.QueryGradPairs, group.Token(group.WarpToken + g) + 2 * t, 8 * group.TokenStep, problem.Scale, problem.Scale, 0);
        }
    }
}
