using System.Collections.Concurrent;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;
using Output32 = SparseAttention.Kernels.Fused.Outputs<SparseAttention.Kernels.Fused.Output16, SparseAttention.Kernels.Fused.Output16>;
using Query128 = SparseAttention.Kernels.Fused.QueryChunks<SparseAttention.Kernels.Fused.Query64, SparseAttention.Kernels.Fused.Query64>;
using Query32 = SparseAttention.Kernels.Fused.QueryChunks<SparseAttention.Kernels.Fused.QueryChunk, SparseAttention.Kernels.Fused.QueryChunk>;
using Slab32 = SparseAttention.Kernels.Fused.Slab<SparseAttention.Kernels.Fused.ScoreTile, SparseAttention.Kernels.Fused.ScoreTile>;
using Slab64 = SparseAttention.Kernels.Fused.Slab<SparseAttention.Kernels.Fused.Slab<SparseAttention.Kernels.Fused.ScoreTile, SparseAttention.Kernels.Fused.ScoreTile>, SparseAttention.Kernels.Fused.Slab<SparseAttention.Kernels.Fused.ScoreTile, SparseAttention.Kernels.Fused.ScoreTile>>;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// The register tiles a fused kernel is specialised for: fragments (Q and dO of the row walks, K and V of the column
/// walk) and accumulators as wide as the head dim, and a score slab of one step of 64 or 32 tokens.
/// </summary>
internal static class TokenTiles
{
    private static readonly ConcurrentDictionary<(string, Type, int, int), Delegate> Kernels = new();

    /// <summary>
    /// The kernel method <paramref name="name"/> of <see cref="FlashKernels"/> (type parameters: element, fragments,
    /// accumulator, slab) specialised for <paramref name="headDim"/> and steps of <paramref name="steps"/> (64 or 32) tokens.
    /// </summary>
    public static Action<TParams> Specialise<TParams, TElement>(string name, int headDim, int steps)
        where TParams : struct =>
        (Action<TParams>)Kernels.GetOrAdd((name, typeof(TElement), headDim, steps), key =>
        {
            var (query, output) = headDim switch
            {
                32 => (typeof(Query32), typeof(Output32)),
                64 => (typeof(Query64), typeof(Output64)),
                128 => (typeof(Query128), typeof(Output128)),
                _ => throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "the fused kernels take head dims 32, 64 and 128"),
            };
            AsyncCopy.RequireCovered(TokenGroup.Threads, headDim, TokenGroup.Rows);

            var slab = steps < 64 ? typeof(Slab32) : typeof(Slab64);
            var method = typeof(FlashKernels).GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)
                ?? throw new MissingMethodException(nameof(FlashKernels), name);
            var kernel = method.MakeGenericMethod(typeof(TElement), query, output, slab);
            var groups = GroupsPerMultiprocessor(name, headDim, steps);
            if (groups > 0)
            {
                KernelLoader.Bound(kernel, TokenGroup.Threads, groups);
            }

            return kernel.CreateDelegate<Action<TParams>>();
        });

    // The groups per multiprocessor a kernel is compiled for, where capping its registers to fit them spills nothing and
    // ran faster on the H200 (one call, 0 against these: the D128 forward 2 -> 3 groups, bf16 8k causal forward 2.462 ->
    // 2.087 ms; the D64 dK/dV 2 -> 3, fp16 4k causal forward+backward 2.603 -> 2.490 ms); 0 leaves ptxas its own choice.
    // Five groups of the D64 forward would need 96 registers, and spill. Three groups of 168 registers fit the register
    // file of every card since sm_80 (64K per SM); the shared memory of three D128 forward groups (sm_86, sm_89: 100 KB)
    // may not, and then ptxas's cap costs instructions for no occupancy: tuned on the H200, the card we measure on.
    private static int GroupsPerMultiprocessor(string name, int headDim, int steps) => (name, headDim, steps) switch
    {
        (nameof(FlashKernels.ForwardKernel), 128, _) => 3,
        (nameof(FlashKernels.KeyValueGradKernel), 64, 64) => 3,
        _ => 0,
    };
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
    public readonly void Score<TElement, TSlab>(ref TSlab slab, in StagedRows keys, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TSlab : struct, IScoreSlab => chunks.Score<TElement, TSlab>(ref slab, keys, key, feature);
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
    public void LoadValues(in StagedRows values, int key, int feature) => tiles.LoadValues(values, key, feature);

    /// <inheritdoc/>
    public void MultiplyValues<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3)
        where TElement : struct, IElement<ushort>, IMmaElement => tiles.MultiplyValues<TElement>(ref a0, ref a1, ref a2, ref a3);

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement => tiles.Store<TElement>(pairs, index, eightRows, low, high, feature);
}

/// <summary>Output accumulator of 128 features, its V fragments loaded 64 features at a time.</summary>
internal struct Output128 : IOutputTiles
{
    private Outputs<Output64, Output64> tiles;

    /// <inheritdoc/>
    public readonly int Features => 128;

    /// <inheritdoc/>
    public void Scale(float low, float high) => tiles.Scale(low, high);

    /// <inheritdoc/>
    public void Accumulate<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, in StagedRows values, int key, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement => tiles.AccumulateHalves<TElement>(ref a0, ref a1, ref a2, ref a3, values, key, feature);

    /// <inheritdoc/>
    public void LoadValues(in StagedRows values, int key, int feature) => tiles.LoadValues(values, key, feature);

    /// <inheritdoc/>
    public void MultiplyValues<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3)
        where TElement : struct, IElement<ushort>, IMmaElement => tiles.MultiplyValues<TElement>(ref a0, ref a1, ref a2, ref a3);

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement => tiles.Store<TElement>(pairs, index, eightRows, low, high, feature);
}
