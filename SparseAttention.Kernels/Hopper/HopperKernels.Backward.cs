using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

// The backward on wgmma, the portable kernels' structure (FlashKernels.Backward.cs, FlashKernels.QueryGrad.cs) with
// every product one wgmma chain: dQ walks block rows with Q and dO staged for the whole walk (S = Q . Kᵀ and
// dP = dO . Vᵀ read both operands from shared memory, dQ += dS . K takes dS from registers); dK and dV walk block
// columns with K and V staged for the whole walk (Sᵀ = K . Qᵀ, dPᵀ = V . dOᵀ; dV += Pᵀ . dO and dK += dSᵀ . Q from
// registers). The walked side's tiles are double-buffered: the step's copies land at the top of the step, and the next
// step's start right after the barrier there, into the buffers the step before read. Deterministic: each gradient
// element is summed by one thread in LUT order.

/// <summary>The Hopper (sm_90) fused backward.</summary>
public static partial class HopperKernels
{
    // Tiles of the backward's staged memory: the two staged for the whole walk, then two buffers of two per step.
    private const int BackwardTiles = 6;

    // The column walk's query steps: one wgmma chain's 64 columns.
    private const int QuerySteps = 64;

    /// <summary>
    /// Writes dQ, dK and dV as <see cref="FlashKernels.LaunchBackward{TElement}"/> does, from the same arguments, with
    /// the two gradient passes on <c>wgmma</c> (on an sm_90 device, or the CPU accelerator's twins).
    /// </summary>
    /// <exception cref="ArgumentException">The head dim or block size is not one these kernels cover.</exception>
    public static void LaunchBackward<TElement>(Accelerator accelerator, in FlashDeltaParams delta, in FlashQueryGradParams queryGrad, in FlashKeyValueGradParams keyValueGrad)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        RequireSupported(queryGrad.Problem, nameof(queryGrad));
        RequireSupported(keyValueGrad.Problem, nameof(keyValueGrad));
        FlashKernels.LaunchDelta<TElement>(accelerator, delta);
        var headDim = queryGrad.Problem.Dims.HeadDim;
        AsyncCopy.RequireCovered(TokenGroup.Threads, headDim, CoreTile.Rows);
        var rowBytes = (BackwardTiles * CoreTile.Bytes(headDim)) + CoreTile.Alignment;
        KernelLoader.Get(accelerator, QueryGradKernelFor<TElement>(headDim), rowBytes)(accelerator.DefaultStream, TokenGroup.Config(accelerator, queryGrad.Problem.Dims, rowBytes), queryGrad);
        var columnBytes = rowBytes + (2 * StagedTerms.Bytes(QuerySteps));
        KernelLoader.Get(accelerator, KeyValueGradKernelFor<TElement>(headDim), columnBytes)(accelerator.DefaultStream, TokenGroup.Config(accelerator, keyValueGrad.Problem.Dims, columnBytes), keyValueGrad);
    }

    /// <summary>The dQ kernel for a head dim: an accumulator as wide as it.</summary>
    public static Action<FlashQueryGradParams> QueryGradKernelFor<TElement>(int headDim)
        where TElement : struct, IElement<ushort>, IMmaElement => headDim switch
        {
            64 => QueryGradKernel<TElement, WideOutput64>,
            128 => QueryGradKernel<TElement, WideOutput128>,
            _ => throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the Hopper dQ takes head dims 64 and 128"),
        };

    /// <summary>The dK/dV kernel for a head dim: accumulators as wide as it.</summary>
    public static Action<FlashKeyValueGradParams> KeyValueGradKernelFor<TElement>(int headDim)
        where TElement : struct, IElement<ushort>, IMmaElement => headDim switch
        {
            64 => KeyValueGradKernel<TElement, WideOutput64>,
            128 => KeyValueGradKernel<TElement, WideOutput128>,
            _ => throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the Hopper dK/dV takes head dims 64 and 128"),
        };

    // Per key step: S = Q . Kᵀ, P = exp2(S * scale - lse), dP = dO . Vᵀ, dS = P * (dP - delta), dQ += dS . K (times the
    // scale at the end). Staged: Q, dO, then K and V of steps in two buffers.
    internal static void QueryGradKernel<TElement, TOutput>(FlashQueryGradParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TOutput : struct, IWideOutput
    {
        var problem = p.Problem;
        var features = default(TOutput).Features;
        var group = new TokenGroup(problem, features, transposed: false);
        var first = CoreTile.AlignedByte(group.FirstStagedByte);
        var inputs = p.Inputs;
        long keyAddress = AsyncCopy.ToGlobal(inputs.KeyAddress), valueAddress = AsyncCopy.ToGlobal(inputs.ValueAddress);
        var query = BackwardTile(group, first, features, 0);
        var outputGrad = BackwardTile(group, first, features, 1);
        var firstRow = group.Token(group.FirstToken);
        query.Stage(inputs.QueryQuads, AsyncCopy.ToGlobal(inputs.QueryAddress), firstRow, group.TokenStep, group.Share);
        outputGrad.Stage(inputs.OutputGradQuads, AsyncCopy.ToGlobal(inputs.OutputGradAddress), firstRow, group.TokenStep, group.Share);
        var walk = group.RowWalk();
        if (!walk.Done)
        {
            var element = group.Token(walk.Token);
            BackwardTile(group, first, features, 2).Stage(inputs.KeyQuads, keyAddress, element, group.TokenStep, group.Share);
            BackwardTile(group, first, features, 3).Stage(inputs.ValueQuads, valueAddress, element, group.TokenStep, group.Share);
        }

        AsyncCopy.Commit();

        // Blocks of 64 and 128 divide ctx, so every row is inside.
        var row = problem.Dims.RowIndex(Grid.IdxY, group.WarpToken + group.G);
        float lseLow = p.LogSumExp[row], lseHigh = p.LogSumExp[row + 8];
        float deltaLow = p.Delta[row], deltaHigh = p.Delta[row + 8];
        var scaleLog2 = problem.Scale * Base2.Log2E;
        var queryGrad = default(TOutput);
        var scores = default(WideScores);
        var grads = default(WideScores);
        var buffer = 0;
        while (!walk.Done)
        {
            Landed();
            var next = walk.Next(problem.Plan);
            if (!next.Done)
            {
                var element = group.Token(next.Token);
                BackwardTile(group, first, features, 4 - (2 * buffer)).Stage(inputs.KeyQuads, keyAddress, element, group.TokenStep, group.Share);
                BackwardTile(group, first, features, 5 - (2 * buffer)).Stage(inputs.ValueQuads, valueAddress, element, group.TokenStep, group.Share);
                AsyncCopy.Commit();
            }

            var keys = BackwardTile(group, first, features, 2 + (2 * buffer));
            scores.Compute<TElement>(query, keys, features);
            group.Mask(ref scores, problem, walk.Token, walk.TokenInBlock, walk.Block, walk.IsFull);
            scores.Exp2Minus(scaleLog2, lseLow, lseHigh);
            grads.Compute<TElement>(outputGrad, BackwardTile(group, first, features, 3 + (2 * buffer)), features);
            scores.TimesGradMinus(grads, deltaLow, deltaHigh);
            queryGrad.Add<TElement>(scores.Operands<TElement>(), keys);
            walk = next;
            buffer = 1 - buffer;
        }

        // A row with nothing to walk leaves its Q and dO copies unawaited.
        AsyncCopy.WaitAll();
        queryGrad.Store<TElement>(p.QueryGradPairs, group.Token(group.WarpToken + group.G) + 2 * group.T, 8 * group.TokenStep, problem.Scale, problem.Scale, 0);
    }

    // Transposed, per query step: Sᵀ = K . Qᵀ, Pᵀ = exp2(Sᵀ * scale - lse), dV += Pᵀ . dO, dPᵀ = V . dOᵀ,
    // dSᵀ = Pᵀ * (dPᵀ - delta), dK += dSᵀ . Q (times the scale at the end). Staged: K, V, then Q and dO of steps in two
    // buffers, and the steps' log-sum-exp and delta in two more.
    internal static void KeyValueGradKernel<TElement, TOutput>(FlashKeyValueGradParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TOutput : struct, IWideOutput
    {
        var problem = p.Problem;
        var features = default(TOutput).Features;
        var group = new TokenGroup(problem, features, transposed: true);
        var first = CoreTile.AlignedByte(group.FirstStagedByte);
        var inputs = p.Inputs;
        long queryAddress = AsyncCopy.ToGlobal(inputs.QueryAddress), outputGradAddress = AsyncCopy.ToGlobal(inputs.OutputGradAddress);
        long logSumExpAddress = AsyncCopy.ToGlobal(p.LogSumExpAddress), deltaAddress = AsyncCopy.ToGlobal(p.DeltaAddress);
        var keys = BackwardTile(group, first, features, 0);
        var values = BackwardTile(group, first, features, 1);
        var firstKey = group.Token(group.FirstToken);
        keys.Stage(inputs.KeyQuads, AsyncCopy.ToGlobal(inputs.KeyAddress), firstKey, group.TokenStep, group.Share);
        values.Stage(inputs.ValueQuads, AsyncCopy.ToGlobal(inputs.ValueAddress), firstKey, group.TokenStep, group.Share);
        var termsByte = first + (BackwardTiles * CoreTile.Bytes(features));
        var walk = group.Walk(QuerySteps);
        if (!walk.Done)
        {
            var element = group.Token(walk.Token);
            BackwardTile(group, first, features, 2).Stage(inputs.QueryQuads, queryAddress, element, group.TokenStep, group.Share);
            BackwardTile(group, first, features, 3).Stage(inputs.OutputGradQuads, outputGradAddress, element, group.TokenStep, group.Share);
            group.Terms(termsByte - group.FirstStagedByte, QuerySteps).Stage(p.LogSumExp, logSumExpAddress, p.Delta, deltaAddress, problem.Dims.RowIndex(Grid.IdxY, walk.Token));
        }

        AsyncCopy.Commit();
        var scaleLog2 = problem.Scale * Base2.Log2E;
        var keyGrad = default(TOutput);
        var valueGrad = default(TOutput);
        var scores = default(WideScores);
        var grads = default(WideScores);
        var buffer = 0;
        while (!walk.Done)
        {
            Landed();
            var next = group.Next(walk, QuerySteps);
            if (!next.Done)
            {
                var element = group.Token(next.Token);
                BackwardTile(group, first, features, 4 - (2 * buffer)).Stage(inputs.QueryQuads, queryAddress, element, group.TokenStep, group.Share);
                BackwardTile(group, first, features, 5 - (2 * buffer)).Stage(inputs.OutputGradQuads, outputGradAddress, element, group.TokenStep, group.Share);
                var nextTerms = termsByte + ((1 - buffer) * StagedTerms.Bytes(QuerySteps)) - group.FirstStagedByte;
                group.Terms(nextTerms, QuerySteps).Stage(p.LogSumExp, logSumExpAddress, p.Delta, deltaAddress, problem.Dims.RowIndex(Grid.IdxY, next.Token));
                AsyncCopy.Commit();
            }

            var block = group.Block(walk);
            var isFull = group.IsFull(block);
            var queries = BackwardTile(group, first, features, 2 + (2 * buffer));
            var outputGrads = BackwardTile(group, first, features, 3 + (2 * buffer));
            var terms = group.Terms(termsByte + (buffer * StagedTerms.Bytes(QuerySteps)) - group.FirstStagedByte, QuerySteps);
            scores.Compute<TElement>(keys, queries, features);
            group.Mask(ref scores, problem, walk.Token, walk.TokenInBlock, block, isFull);
            scores.Exp2MinusColumns(scaleLog2, terms);
            valueGrad.Add<TElement>(scores.Operands<TElement>(), outputGrads);
            grads.Compute<TElement>(values, outputGrads, features);
            scores.TimesGradMinusColumns(grads, terms);
            keyGrad.Add<TElement>(scores.Operands<TElement>(), queries);
            walk = next;
            buffer = 1 - buffer;
        }

        AsyncCopy.WaitAll();
        var index = group.Token(group.WarpToken + group.G) + 2 * group.T;
        keyGrad.Store<TElement>(p.KeyGradPairs, index, 8 * group.TokenStep, problem.Scale, problem.Scale, 0);
        valueGrad.Store<TElement>(p.ValueGradPairs, index, 8 * group.TokenStep, 1f, 1f, 0);
    }

    // Tile `index` of the backward's staged memory (see BackwardTiles).
    private static CoreTile BackwardTile(in TokenGroup group, int first, int features, int index) => new(group.Shared, first + (index * CoreTile.Bytes(features)));
}
