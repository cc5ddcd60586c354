using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

/// <summary>Arguments of the fp16/bf16 masked softmax kernel: scores and probabilities as 16-byte quads.</summary>
public readonly struct SoftmaxPackedParams
{
    /// <summary>Scores <c>[batch, heads, blocks, block, block]</c> as quads, 16-byte aligned.</summary>
    public ArrayView<Quad> InputQuads { get; init; }

    /// <summary>Probabilities, same shape, as quads, 16-byte aligned; every element is written.</summary>
    public ArrayView<Quad> OutputQuads { get; init; }

    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }

    /// <summary>Multiplies the scores before the softmax.</summary>
    public float Scale { get; init; }

    /// <summary>1 to apply the element bit masks, 0 for a plain softmax over whole blocks.</summary>
    public int UseMask { get; init; }

    /// <summary>Keys at or after this position need <c>k &lt;= q</c>; ctx disables the rule.</summary>
    public int AutoregressAtKey { get; init; }
}

/// <summary>Arguments of the fp16/bf16 softmax gradient kernel: every tensor as 16-byte quads.</summary>
public readonly struct SoftmaxGradPackedParams
{
    /// <summary>Forward probabilities as quads, 16-byte aligned.</summary>
    public ArrayView<Quad> ProbabilityQuads { get; init; }

    /// <summary>Gradient of the probabilities as quads, 16-byte aligned.</summary>
    public ArrayView<Quad> OutputGradQuads { get; init; }

    /// <summary>Gradient of the scores as quads, 16-byte aligned; every element is written.</summary>
    public ArrayView<Quad> InputGradQuads { get; init; }

    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }

    /// <summary>The forward scale.</summary>
    public float Scale { get; init; }
}

/// <summary>Softmax v4: fp16 and bf16 rows moved eight elements (16 bytes) per lane.</summary>
public static partial class SoftmaxKernels
{
    /// <summary>Runs the masked (or plain) softmax on 16-bit scores.</summary>
    public static void LaunchPacked<TElement>(Accelerator accelerator, in SoftmaxPackedParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        SharedTiles.RequireAligned(p.InputQuads, nameof(p.InputQuads));
        SharedTiles.RequireAligned(p.OutputQuads, nameof(p.OutputQuads));
        KernelLoader.Get<SoftmaxPackedParams>(accelerator, ForwardPacked<TElement>)(accelerator.DefaultStream, Config(p.Dims), p);
    }

    /// <summary>Runs the softmax gradient on 16-bit tensors.</summary>
    public static void LaunchGradPacked<TElement>(Accelerator accelerator, in SoftmaxGradPackedParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        SharedTiles.RequireAligned(p.ProbabilityQuads, nameof(p.ProbabilityQuads));
        SharedTiles.RequireAligned(p.OutputGradQuads, nameof(p.OutputGradQuads));
        SharedTiles.RequireAligned(p.InputGradQuads, nameof(p.InputGradQuads));
        KernelLoader.Get<SoftmaxGradPackedParams>(accelerator, BackwardPacked<TElement>)(accelerator.DefaultStream, Config(p.Dims), p);
    }

    internal static void ForwardPacked<TElement>(SoftmaxPackedParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var row = new RowCursor(p.Plan, p.Dims);
        var step = new PackedStep(row.BlockSize);

        // Base 2 (scores times scale * log2(e)): one fused multiply-add and one ex2 per element.
        var scaleLog2 = p.Scale * Base2.Log2E;

        // Online softmax, eight elements at a time: the sum is rescaled when a quad raises the max. Two quads per lane
        // per iteration, both loaded before either is used: one chain of table and score loads is a latency each.
        var max = float.NegativeInfinity;
        var sum = 0f;
        for (var first = row.Start + step.Slot; first < row.End; first += 2 * step.BlocksPerStep)
        {
            var near = new PackedScores(p, row, step, first);
            var far = new PackedScores(p, row, step, first + step.BlocksPerStep);
            near.Accumulate<TElement>(scaleLog2, ref max, ref sum);
            far.Accumulate<TElement>(scaleLog2, ref max, ref sum);
        }

        // Combine lanes: a lane that saw nothing has max -inf and sum 0 and must contribute nothing (not exp(NaN)).
        var rowMax = WarpMax(max);
        sum = max == float.NegativeInfinity ? 0f : sum * Base2.Exp2(max - rowMax);
        sum = WarpSum(sum);
        var inverse = sum > 0f ? 1f / sum : 0f;
        for (var first = row.Start + step.Slot; first < row.End; first += 2 * step.BlocksPerStep)
        {
            var near = new PackedScores(p, row, step, first);
            var far = new PackedScores(p, row, step, first + step.BlocksPerStep);
            near.Store<TElement>(p, scaleLog2, rowMax, inverse);
            far.Store<TElement>(p, scaleLog2, rowMax, inverse);
        }
    }

    internal static void BackwardPacked<TElement>(SoftmaxGradPackedParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var row = new RowCursor(p.Plan, p.Dims);
        var step = new PackedStep(row.BlockSize);
        var dot = 0f;
        for (var first = row.Start; first < row.End; first += step.BlocksPerStep)
        {
            var entry = first + step.Slot;
            if (entry < row.End)
            {
                var index = (row.BlockRowStart(entry) + step.Column) >> 3;
                Quad y = p.ProbabilityQuads[index], dy = p.OutputGradQuads[index];
                dot += PairDot<TElement>(dy.X, y.X) + PairDot<TElement>(dy.Y, y.Y) + PairDot<TElement>(dy.Z, y.Z) + PairDot<TElement>(dy.W, y.W);
            }
        }

        dot = WarpSum(dot);
        for (var first = row.Start; first < row.End; first += step.BlocksPerStep)
        {
            var entry = first + step.Slot;
            if (entry < row.End)
            {
                var index = (row.BlockRowStart(entry) + step.Column) >> 3;
                Quad y = p.ProbabilityQuads[index], dy = p.OutputGradQuads[index];
                p.InputGradQuads[index] = new Quad
                {
                    X = PairGrad<TElement>(dy.X, y.X, dot, p.Scale),
                    Y = PairGrad<TElement>(dy.Y, y.Y, dot, p.Scale),
                    Z = PairGrad<TElement>(dy.Z, y.Z, dot, p.Scale),
                    W = PairGrad<TElement>(dy.W, y.W, dot, p.Scale),
                };
            }
        }
    }

    // Bit i set where key FirstKey + column + i of the row is allowed: eight mask bits (one byte, as blocks are
    // multiples of eight wide) and, past autoregressAtKey, only keys up to the query.
    private static uint AllowedBits(in SoftmaxPackedParams p, in RowCursor row, in BlockInRow block, int column)
    {
        var bits = 0xFFu;
        if (p.UseMask != 0 && !block.IsFull)
        {
            var bit = row.RowInBlock * row.BlockSize + column;
            bits = (p.Plan.Masks[block.MaskBase + (bit >> 5)] >> (bit & 31)) & 0xFFu;
        }

        var firstExcluded = XMath.Max(p.AutoregressAtKey, row.Query + 1) - (block.FirstKey + column);
        return firstExcluded <= 0 ? 0u : firstExcluded >= 8 ? bits : bits & ((1u << firstExcluded) - 1u);
    }

    private static float Low<TElement>(uint pair)
        where TElement : struct, IElement<ushort> => default(TElement).ToFloat((ushort)(pair & 0xFFFFu));

    private static float High<TElement>(uint pair)
        where TElement : struct, IElement<ushort> => default(TElement).ToFloat((ushort)(pair >> 16));

    private static float PairMax<TElement>(uint pair, uint allowed, float scale)
        where TElement : struct, IElement<ushort> =>
        XMath.Max((allowed & 1u) != 0 ? Low<TElement>(pair) * scale : float.NegativeInfinity, (allowed & 2u) != 0 ? High<TElement>(pair) * scale : float.NegativeInfinity);

    private static float PairExpSum<TElement>(uint pair, uint allowed, float scale, float max)
        where TElement : struct, IElement<ushort> =>
        ((allowed & 1u) != 0 ? Base2.Exp2(Low<TElement>(pair) * scale - max) : 0f) + ((allowed & 2u) != 0 ? Base2.Exp2(High<TElement>(pair) * scale - max) : 0f);

    private static uint PairSoftmax<TElement>(uint pair, uint allowed, float scale, float max, float inverse)
        where TElement : struct, IElement<ushort>, IMmaElement =>
        default(TElement).Pack(
            (allowed & 1u) != 0 ? Base2.Exp2(Low<TElement>(pair) * scale - max) * inverse : 0f,
            (allowed & 2u) != 0 ? Base2.Exp2(High<TElement>(pair) * scale - max) * inverse : 0f);

    private static float PairDot<TElement>(uint dy, uint y)
        where TElement : struct, IElement<ushort> => Low<TElement>(dy) * Low<TElement>(y) + High<TElement>(dy) * High<TElement>(y);

    private static uint PairGrad<TElement>(uint dy, uint y, float dot, float scale)
        where TElement : struct, IElement<ushort>, IMmaElement =>
        default(TElement).Pack((Low<TElement>(dy) - dot) * Low<TElement>(y) * scale, (High<TElement>(dy) - dot) * High<TElement>(y) * scale);

    /// <summary>Eight scores of a row with their allowed bits; nothing (no bits, no store) past the row's last entry.</summary>
    private readonly struct PackedScores
    {
        private readonly Quad scores;
        private readonly uint allowed;
        private readonly long index;

        public PackedScores(in SoftmaxPackedParams p, in RowCursor row, in PackedStep step, int entry)
        {
            index = -1;
            if (entry < row.End)
            {
                var block = new BlockInRow(row, p.Plan, entry);
                index = (block.ElementBase + step.Column) >> 3;
                scores = p.InputQuads[index];
                allowed = AllowedBits(p, row, block, step.Column);
            }
        }

        public void Accumulate<TElement>(float scale, ref float max, ref float sum)
            where TElement : struct, IElement<ushort>
        {
            var quadMax = XMath.Max(
                XMath.Max(PairMax<TElement>(scores.X, allowed, scale), PairMax<TElement>(scores.Y, allowed >> 2, scale)),
                XMath.Max(PairMax<TElement>(scores.Z, allowed >> 4, scale), PairMax<TElement>(scores.W, allowed >> 6, scale)));
            if (quadMax > max)
            {
                sum *= Base2.Exp2(max - quadMax);
                max = quadMax;
            }

            sum += PairExpSum<TElement>(scores.X, allowed, scale, max) + PairExpSum<TElement>(scores.Y, allowed >> 2, scale, max)
                + PairExpSum<TElement>(scores.Z, allowed >> 4, scale, max) + PairExpSum<TElement>(scores.W, allowed >> 6, scale, max);
        }

        public void Store<TElement>(in SoftmaxPackedParams p, float scale, float max, float inverse)
            where TElement : struct, IElement<ushort>, IMmaElement
        {
            if (index >= 0)
            {
                p.OutputQuads[index] = new Quad
                {
                    X = PairSoftmax<TElement>(scores.X, allowed, scale, max, inverse),
                    Y = PairSoftmax<TElement>(scores.Y, allowed >> 2, scale, max, inverse),
                    Z = PairSoftmax<TElement>(scores.Z, allowed >> 4, scale, max, inverse),
                    W = PairSoftmax<TElement>(scores.W, allowed >> 6, scale, max, inverse),
                };
            }
        }
    }

    /// <summary>Which eight elements of a row a lane moves: lanes split into slots of <c>block / 8</c>, one block per slot.</summary>
    private readonly struct PackedStep
    {
        public PackedStep(int blockSize)
        {
            var lanesPerBlock = blockSize >> 3;
            var lane = Group.IdxX % WarpSize;
            BlocksPerStep = WarpSize / lanesPerBlock;
            Slot = lane / lanesPerBlock;
            Column = lane % lanesPerBlock * 8;
        }

        public int BlocksPerStep { get; }

        public int Slot { get; }

        public int Column { get; }
    }
}
