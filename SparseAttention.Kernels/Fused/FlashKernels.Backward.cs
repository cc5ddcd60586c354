using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>The fused backward: delta = rowsum(O * dO), then dQ by the row LUT and dK, dV by the column LUT.</summary>
public static partial class FlashKernels
{
    /// <summary>Writes dQ, dK and dV from q, k, v, the forward output and log-sum-exp and the output gradient.</summary>
    /// <remarks>Deterministic: every gradient element is summed by one lane in LUT order, no atomics.</remarks>
    public static void LaunchBackward<TElement>(Accelerator accelerator, in FlashDeltaParams delta, in FlashQueryGradParams queryGrad, in FlashKeyValueGradParams keyValueGrad)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        LaunchDelta<TElement>(accelerator, delta);
        var dq = QueryGradKernelFor<TElement>(queryGrad.Problem.Dims.HeadDim, queryGrad.Problem.Plan.BlockSize);
        KernelLoader.Get(accelerator, dq)(accelerator.DefaultStream, TokenGroup.Config(accelerator, queryGrad.Problem.Dims, RowWalkBytes(queryGrad.Problem.Dims.HeadDim)), queryGrad);
        var (headDim, blockSize) = (keyValueGrad.Problem.Dims.HeadDim, keyValueGrad.Problem.Plan.BlockSize);
        var dkdv = KeyValueGradKernelFor<TElement>(headDim, blockSize);
        KernelLoader.Get(accelerator, dkdv)(accelerator.DefaultStream, TokenGroup.Config(accelerator, keyValueGrad.Problem.Dims, ColumnWalkBytes(headDim, ColumnSteps(headDim, blockSize))), keyValueGrad);
    }

    /// <summary>Writes delta = rowsum(O * dO), the first pass of every fused backward.</summary>
    internal static void LaunchDelta<TElement>(Accelerator accelerator, in FlashDeltaParams delta)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var quads = delta.Dims.Batch * delta.Dims.Ctx * delta.Dims.Heads * (delta.Dims.HeadDim >> 3);
        KernelLoader.Get<FlashDeltaParams>(accelerator, DeltaKernel<TElement>)(accelerator.DefaultStream, new KernelConfig((quads + 255) / 256, 256), delta);
    }

    // One thread per 16-byte quad of a (sequence, token, head) row, the row's head dim / 8 lanes (a power of two that
    // divides 32 for the fused head dims, so no row straddles two warps) summing by shuffles:
    // one thread per row with 2-byte loads took 0.37 ms on the H200 for the causal 4k benchmark, now a copy's time.
    internal static void DeltaKernel<TElement>(FlashDeltaParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var dims = p.Dims;
        var rowQuads = dims.HeadDim >> 3;
        var quad = Grid.GlobalIndex.X;
        var row = quad / rowQuads;
        var inside = row < dims.Batch * dims.Ctx * dims.Heads;
        var sum = inside ? Dot(default(TElement), p.OutputQuads[quad], p.OutputGradQuads[quad]) : 0f;
        for (var lanes = rowQuads >> 1; lanes > 0; lanes >>= 1)
        {
            sum += Warp.ShuffleXor(sum, lanes);
        }

        if (inside && quad - row * rowQuads == 0)
        {
            var h = row % dims.Heads;
            var token = row / dims.Heads % dims.Ctx;
            var n = row / dims.Heads / dims.Ctx;
            p.Delta[dims.RowIndex((n * dims.Heads) + h, token)] = sum;
        }
    }

    private static float Dot<TElement>(TElement element, Quad x, Quad y)
        where TElement : struct, IElement<ushort> =>
        Dot(element, x.X, y.X) + Dot(element, x.Y, y.Y) + Dot(element, x.Z, y.Z) + Dot(element, x.W, y.W);

    private static float Dot<TElement>(TElement element, uint x, uint y)
        where TElement : struct, IElement<ushort> =>
        (element.ToFloat((ushort)x) * element.ToFloat((ushort)y)) + (element.ToFloat((ushort)(x >> 16)) * element.ToFloat((ushort)(y >> 16)));

    /// <summary>The dK/dV kernel for a head dim and block size (register tiles as wide as the head dim, query steps of <see cref="ColumnSteps"/>).</summary>
    public static Action<FlashKeyValueGradParams> KeyValueGradKernelFor<TElement>(int headDim, int blockSize)
        where TElement : struct, IElement<ushort>, IMmaElement => TokenTiles.Specialise<FlashKeyValueGradParams, TElement>(nameof(KeyValueGradKernel), headDim, ColumnSteps(headDim, blockSize));

    // Transposed, per query step: Pᵀ = exp2(K . Qᵀ * scale - lse), dV += Pᵀ . dO, dSᵀ = Pᵀ * (V . dOᵀ - delta),
    // dK += dSᵀ . Q (times the scale at the end). A group of four warps owns 64 keys, K and V fragments in registers;
    // per step the group stages Q, dO, log-sum-exp and delta by cp.async into one of two buffers while the warps
    // compute on the other. Deterministic: each dK and dV element is summed by one lane in query order.
    internal static void KeyValueGradKernel<TElement, TFragments, TAccumulator, TSlab>(FlashKeyValueGradParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TFragments : struct, IQueryFragments
        where TAccumulator : struct, IOutputTiles
        where TSlab : struct, IScoreSlab
    {
        var problem = p.Problem;
        var dims = problem.Dims;
        var steps = default(TSlab).Keys;
        var features = default(TAccumulator).Features;
        var group = new TokenGroup(problem, features, transposed: true);
        int g = group.G, t = group.T;
        var share = group.Share;
        long queryAddress = AsyncCopy.ToGlobal(p.Inputs.QueryAddress), outputGradAddress = AsyncCopy.ToGlobal(p.Inputs.OutputGradAddress);
        long logSumExpAddress = AsyncCopy.ToGlobal(p.LogSumExpAddress), deltaAddress = AsyncCopy.ToGlobal(p.DeltaAddress);

        // K and V through shared memory into registers.
        var rows = XMath.Min(TokenGroup.Rows, dims.Ctx - group.FirstToken);
        group.KeyRows.Stage(p.Inputs.KeyQuads, AsyncCopy.ToGlobal(p.Inputs.KeyAddress), group.Token(group.FirstToken), group.TokenStep, rows, share);
        group.ValueRows.Stage(p.Inputs.ValueQuads, AsyncCopy.ToGlobal(p.Inputs.ValueAddress), group.Token(group.FirstToken), group.TokenStep, rows, share);
        AsyncCopy.Commit();
        AsyncCopy.WaitAll();
        Group.Barrier();
        var key = default(TFragments);
        var value = default(TFragments);
        key.Load(group.KeyRows, group.WarpRow, 0);
        value.Load(group.ValueRows, group.WarpRow, 0);
        Group.Barrier();

        // Then the same memory holds two buffers of a step's Q and dO, the terms two more after them.
        var queryRows = group.Tile(0, steps);
        var outputGradRows = group.Tile(1, steps);
        var terms = group.Terms(ColumnTermsOffset(features, steps), steps);
        int rowsShift = 2 * TokenGroup.TileBytes(features, steps), termsShift = StagedTerms.Bytes(steps);
        var walk = group.Walk(steps);
        if (!walk.Done)
        {
            queryRows.Stage(p.Inputs.QueryQuads, queryAddress, group.Token(walk.Token), group.TokenStep, steps, share);
            outputGradRows.Stage(p.Inputs.OutputGradQuads, outputGradAddress, group.Token(walk.Token), group.TokenStep, steps, share);
            terms.Stage(p.LogSumExp, logSumExpAddress, p.Delta, deltaAddress, dims.RowIndex(Grid.IdxY, walk.Token));
            AsyncCopy.Commit();
        }

        var scaleLog2 = problem.Scale * Base2.Log2E;
        var keyGrad = default(TAccumulator);
        var valueGrad = default(TAccumulator);
        var slab = default(TSlab);
        while (!walk.Done)
        {
            // This step's buffers have landed, and no warp still reads the other ones: the next step loads into them.
            AsyncCopy.WaitAll();
            Group.Barrier();
            var next = group.Next(walk, steps);
            if (!next.Done)
            {
                queryRows.Shifted(rowsShift).Stage(p.Inputs.QueryQuads, queryAddress, group.Token(next.Token), group.TokenStep, steps, share);
                outputGradRows.Shifted(rowsShift).Stage(p.Inputs.OutputGradQuads, outputGradAddress, group.Token(next.Token), group.TokenStep, steps, share);
                terms.Shifted(termsShift).Stage(p.LogSumExp, logSumExpAddress, p.Delta, deltaAddress, dims.RowIndex(Grid.IdxY, next.Token));
                AsyncCopy.Commit();
            }

            // As in the forward, a warp without the block runs the step masked.
            var block = group.Block(walk);
            var isFull = group.IsFull(block);
            slab.Compute<TElement, TFragments>(key, queryRows, 0);
            group.Mask(ref slab, problem, walk.Token, walk.TokenInBlock, block, isFull);
            slab.Exp2MinusColumns(scaleLog2, terms, 0);
            slab.Accumulate<TElement, TAccumulator>(ref valueGrad, outputGradRows, 0);
            slab.SoftmaxGradColumns<TElement, TFragments>(value, outputGradRows, 0, terms);
            slab.Accumulate<TElement, TAccumulator>(ref keyGrad, queryRows, 0);

            queryRows = queryRows.Shifted(rowsShift);
            outputGradRows = outputGradRows.Shifted(rowsShift);
            terms = terms.Shifted(termsShift);
            rowsShift = -rowsShift;
            termsShift = -termsShift;
            walk = next;
        }

        // A warp past ctx (blocks of 32, odd block count) has no keys.
        if (group.WarpToken < dims.Ctx)
        {
            var first = group.Token(group.WarpToken + g) + 2 * t;
            keyGrad.Store<TElement>(p.KeyGradPairs, first, 8 * group.TokenStep, problem.Scale, problem.Scale, 0);
            valueGrad.Store<TElement>(p.ValueGradPairs, first, 8 * group.TokenStep, 1f, 1f, 0);
        }
    }
}
