using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

// The backward on wgmma, the portable kernels' structure (FlashKernels.Backward.cs, FlashKernels.QueryGrad.cs) with
// every product one wgmma chain: dQ walks block rows with Q and dO staged for the whole walk (S = Q . Kᵀ and
// dP = dO . Vᵀ read both operands from shared memory, dQ += dS . K takes dS from registers); dK and dV walk block
// columns with K and V staged for the whole walk (Sᵀ = K . Qᵀ, dPᵀ = V . dOᵀ; dV += Pᵀ . dO and dK += dSᵀ . Q from
// registers), down the column with ColumnWalk. The walked side's tiles are staged a step ahead: the step's copies
// land at the top of the step, and the next step's start right after the barrier there, into buffers no thread reads
// any more (see DefersKeyGrad). Deterministic: each gradient element is summed by one thread in LUT order.
// Versions (docs/benchmarks.md, H200, causal fwd+bwd with the Hopper forward, fp16 D64 4k / bf16 D128 8k; with the
// portable backward 2.37 / 8.41 ms):
//   v1  every product one wgmma chain, the portable kernels' walks, double buffers: 1.83 / 5.72 ms.
//   v2  dK/dV: ColumnWalk (its table reads two blocks ahead), dK += dSᵀ . Q first in the next step at head dim 64:
//       1.84 / 5.53 ms (dK/dV alone 1040 -> 930 us at D64, ncu).
//   v3  as the forward's v4 (MaskBlock, TileSource and TermsSource, Shifted tiles), dK/dV at D64 capped for three
//       groups per SM: 1.71 / 5.32 ms (ncu at D64: dQ 686 -> 627 us, dK/dV 955 -> 877 us).

/// <summary>The Hopper (sm_90) fused backward.</summary>
public static partial class HopperKernels
{
    // Staged tiles of dQ: Q and dO for the whole walk, then two buffers of a step's K and V.
    private const int QueryGradTiles = 6;

    // The column walk's query steps: one wgmma chain's 64 columns.
    private const int QueryStepTokens = ColumnWalk.StepTokens;

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
        var rowBytes = (QueryGradTiles * CoreTile.Bytes(headDim)) + CoreTile.Alignment;
        KernelLoader.Get(accelerator, QueryGradKernelFor<TElement>(headDim), rowBytes)(accelerator.DefaultStream, TokenGroup.Config(accelerator, queryGrad.Problem.Dims, rowBytes), queryGrad);
        var columnBytes = (KeyValueGradTiles(headDim) * CoreTile.Bytes(headDim)) + CoreTile.Alignment + (2 * StagedTerms.Bytes(QueryStepTokens));
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
            64 => KeyValueGradKernels<TElement>.HeadDim64,
            128 => KeyValueGradKernels<TElement>.HeadDim128,
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
        var tiles = new CoreTile(group.Shared, CoreTile.AlignedByte(group.FirstStagedByte));
        var inputs = p.Inputs;
        var keySource = new TileSource(inputs.KeyQuads, inputs.KeyAddress, group);
        var valueSource = new TileSource(inputs.ValueQuads, inputs.ValueAddress, group);
        var (query, outputGrad) = StageOwn(group, tiles, features, new TileSource(inputs.QueryQuads, inputs.QueryAddress, group), new TileSource(inputs.OutputGradQuads, inputs.OutputGradAddress, group));
        var walk = group.RowWalk();
        if (!walk.Done)
        {
            StageKeyStep(tiles, features, keySource, valueSource, walk.Token, 0);
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
                StageKeyStep(tiles, features, keySource, valueSource, next.Token, 1 - buffer);
                AsyncCopy.Commit();
            }

            var keys = StepKeys(tiles, features, buffer);
            scores.Compute<TElement>(query, keys, features);
            group.MaskBlock(ref scores, problem, walk.Token, walk.TokenInBlock, walk.Block, walk.IsFull);
            scores.Exp2Minus(scaleLog2, lseLow, lseHigh);
            grads.Compute<TElement>(outputGrad, StepValues(tiles, features, buffer), features);
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
    // dSᵀ = Pᵀ * (dPᵀ - delta), dK += dSᵀ . Q (at head dim 64 first in the next step); dK times the scale at the end.
    // Staged: K, V, then Q's buffers and dO's two, and the steps' log-sum-exp and delta in two more.
    internal static void KeyValueGradKernel<TElement, TOutput>(FlashKeyValueGradParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TOutput : struct, IWideOutput
    {
        var problem = p.Problem;
        var features = default(TOutput).Features;
        var group = new TokenGroup(problem, features, transposed: true);
        var first = CoreTile.AlignedByte(group.FirstStagedByte);
        var tiles = new CoreTile(group.Shared, first);
        var stagedTerms = new StagedTerms(group.Shared, first + (KeyValueGradTiles(features) * CoreTile.Bytes(features)), QueryStepTokens);
        var inputs = p.Inputs;
        var querySource = new TileSource(inputs.QueryQuads, inputs.QueryAddress, group);
        var outputGradSource = new TileSource(inputs.OutputGradQuads, inputs.OutputGradAddress, group);
        var termsSource = stagedTerms.SourceOf(p.LogSumExp, AsyncCopy.ToGlobal(p.LogSumExpAddress), p.Delta, AsyncCopy.ToGlobal(p.DeltaAddress), problem.Dims.RowIndex(Grid.IdxY, 0));
        var (keys, values) = StageOwn(group, tiles, features, new TileSource(inputs.KeyQuads, inputs.KeyAddress, group), new TileSource(inputs.ValueQuads, inputs.ValueAddress, group));
        var deferred = DefersKeyGrad(features);
        var walk = group.ColumnWalk();
        if (!walk.Done)
        {
            StageQueryStep(tiles, stagedTerms, features, querySource, outputGradSource, termsSource, walk.Token, 0, 0);
        }

        AsyncCopy.Commit();
        var scaleLog2 = problem.Scale * Base2.Log2E;
        var keyGrad = default(TOutput);
        var valueGrad = default(TOutput);
        var scores = default(WideScores);
        var grads = default(WideScores);
        var gradScores = default(ValueOperands);
        int queryBuffer = 0, gradBuffer = 0, previous = 0;
        var walked = !walk.Done;
        while (!walk.Done)
        {
            // Before the first step, dSᵀ is zeros and Q this step's: it adds nothing.
            Landed();
            if (deferred)
            {
                keyGrad.Add<TElement>(gradScores, Queries(tiles, features, previous));
            }

            var next = walk.Next(problem.Plan);
            var nextQueries = queryBuffer + 1 == QueryBuffers(features) ? 0 : queryBuffer + 1;
            if (!next.Done)
            {
                StageQueryStep(tiles, stagedTerms, features, querySource, outputGradSource, termsSource, next.Token, nextQueries, 1 - gradBuffer);
                AsyncCopy.Commit();
            }

            var outputGrads = OutputGrads(tiles, features, gradBuffer);
            var terms = Terms(stagedTerms, gradBuffer);
            scores.Compute<TElement>(keys, Queries(tiles, features, queryBuffer), features);
            group.MaskBlock(ref scores, problem, walk.Token, walk.TokenInBlock, walk.Block, walk.IsFull);
            scores.Exp2MinusColumns(scaleLog2, terms);
            valueGrad.Add<TElement>(scores.Operands<TElement>(), outputGrads);
            grads.Compute<TElement>(values, outputGrads, features);
            scores.TimesGradMinusColumns(grads, terms);
            gradScores = scores.Operands<TElement>();
            if (!deferred)
            {
                keyGrad.Add<TElement>(gradScores, Queries(tiles, features, queryBuffer));
            }

            walk = next;
            previous = queryBuffer;
            queryBuffer = nextQueries;
            gradBuffer = 1 - gradBuffer;
        }

        if (walked && deferred)
        {
            keyGrad.Add<TElement>(gradScores, Queries(tiles, features, previous));
        }

        AsyncCopy.WaitAll();
        var index = group.Token(group.WarpToken + group.G) + 2 * group.T;
        keyGrad.Store<TElement>(p.KeyGradPairs, index, 8 * group.TokenStep, problem.Scale, problem.Scale, 0);
        valueGrad.Store<TElement>(p.ValueGradPairs, index, 8 * group.TokenStep, 1f, 1f, 0);
    }

    // dK/dV at head dim 64 starts each step with the step before's dK += dSᵀ . Q: the product first in the loop gets its
    // accumulator's registers first and keeps them (last in the step, ptxas gave it the scores' registers and moved dK
    // in and out: the loop's static moves went from 173 to 139). Q is then still read at the top of the next step, so it has three buffers and
    // the next step's copies go where the step before last read. At 128, dSᵀ's operands held across the loop beside
    // dK, dV, Sᵀ and dPᵀ made ptxas spill (255 registers, a 48-byte frame); last in the step, 234 and none. (dQ took
    // the same change at both head dims: 2 % faster on causal at 64, 11 % slower on `local` and 2 % slower at 128, ncu
    // on an H200, so it stays in step order.)
    private static bool DefersKeyGrad(int features) => features == 64;

    // Q's buffers (see DefersKeyGrad); dO and the terms have two.
    private static int QueryBuffers(int features) => DefersKeyGrad(features) ? 3 : 2;

    // Staged tiles of dK/dV: K and V for the whole walk, Q's buffers, dO's two.
    private static int KeyValueGradTiles(int features) => 4 + QueryBuffers(features);

    // Starts staging the group's own 64 tokens of the two tensors a walk keeps (Q and dO for dQ, K and V for dK/dV) into
    // tiles 0 and 1.
    private static (CoreTile First, CoreTile Second) StageOwn(in TokenGroup group, in CoreTile tiles, int features, in TileSource firstSource, in TileSource secondSource)
    {
        var firstTile = BackwardTile(tiles, features, 0);
        var secondTile = BackwardTile(tiles, features, 1);
        firstTile.Stage(firstSource, group.FirstToken);
        secondTile.Stage(secondSource, group.FirstToken);
        return (firstTile, secondTile);
    }

    // Tile `index` of the backward's staged memory.
    private static CoreTile BackwardTile(in CoreTile tiles, int features, int index) => tiles.Shifted(index * CoreTile.Bytes(features));

    // dQ's K buffer `buffer` (tiles 2, 4) and V buffer (3, 5).
    private static CoreTile StepKeys(in CoreTile tiles, int features, int buffer) => BackwardTile(tiles, features, 2 + (2 * buffer));

    private static CoreTile StepValues(in CoreTile tiles, int features, int buffer) => BackwardTile(tiles, features, 3 + (2 * buffer));

    // dQ starts copying the K and V rows of the step at key `token` into buffer `buffer`.
    private static void StageKeyStep(in CoreTile tiles, int features, in TileSource keys, in TileSource values, int token, int buffer)
    {
        StepKeys(tiles, features, buffer).Stage(keys, token);
        StepValues(tiles, features, buffer).Stage(values, token);
    }

    // dK/dV starts copying the Q and dO rows of the step at query `token` into buffers `queryBuffer` and `gradBuffer`,
    // and the step's log-sum-exp and delta into terms buffer `gradBuffer` (of the two from `stagedTerms`).
    private static void StageQueryStep(in CoreTile tiles, in StagedTerms stagedTerms, int features, in TileSource queries, in TileSource outputGrads, in TermsSource terms, int token, int queryBuffer, int gradBuffer)
    {
        Queries(tiles, features, queryBuffer).Stage(queries, token);
        OutputGrads(tiles, features, gradBuffer).Stage(outputGrads, token);
        Terms(stagedTerms, gradBuffer).Stage(terms, token);
    }

    // dK/dV's terms buffer `buffer` of the two from `stagedTerms` (past every tile).
    private static StagedTerms Terms(in StagedTerms stagedTerms, int buffer) => stagedTerms.Shifted(buffer * StagedTerms.Bytes(QueryStepTokens));

    // Q buffer `buffer` of dK/dV.
    private static CoreTile Queries(in CoreTile tiles, int features, int buffer) => BackwardTile(tiles, features, 2 + buffer);

    // dO buffer `buffer` of dK/dV.
    private static CoreTile OutputGrads(in CoreTile tiles, int features, int buffer) => BackwardTile(tiles, features, 2 + QueryBuffers(features) + buffer);

    // The dK/dV kernels of an element type, made once, with the head dim 64 one's launch bounds given before its first
    // compile. With the staging's per-thread sources held through the walk, ptxas took 174 registers at head dim 64 and
    // two groups fit an SM; capped for three, it keeps 24 bytes on the stack, Q's and dO's source addresses among them,
    // which each staging step reads back from L1 (H200, ncu, causal fp16 4k: 1050 us uncapped, 877 capped; 918 with
    // the staging recomputed every step and no stack).
    private static class KeyValueGradKernels<TElement>
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        public static readonly Action<FlashKeyValueGradParams> HeadDim64 = ThreeGroups(KeyValueGradKernel<TElement, WideOutput64>);

        public static readonly Action<FlashKeyValueGradParams> HeadDim128 = KeyValueGradKernel<TElement, WideOutput128>;

        private static Action<FlashKeyValueGradParams> ThreeGroups(Action<FlashKeyValueGradParams> kernel)
        {
            KernelLoader.Bound(kernel.Method, TokenGroup.Threads, 3);
            return kernel;
        }
    }
}
