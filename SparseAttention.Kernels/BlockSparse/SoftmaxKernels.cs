using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

// Masked softmax over block-sparse rows, and its gradient. One warp per query row: the row's elements are the
// enabled blocks of its block row, each contributing one block row of `block` elements.
// Forward:  y = exp(x*scale - max) / sum over allowed elements; y = 0 exactly where excluded; an empty row is all zeros.
// Backward: dx = (dy - sum_row(dy * y)) * y * scale (y = 0 where excluded, so no mask is needed).
// Versions:
//   v1  one 32-lane warp per row, three passes (max, sum, write) with butterfly shuffles, fp32 math.
//   v2  per-block values (LUT entry, key block, full flag, element base) read once per block instead of per element.
//   v3  four rows (warps) per group instead of one, for occupancy; forward in two passes with an online max/sum
//       (one read fewer, one exp fewer per element).
//   v4  fp16/bf16 (SoftmaxKernels.Packed.cs): each lane moves eight elements of a row with one 16-byte load or store,
//       so a warp covers 256 elements (several blocks) per step instead of 32; mask bits taken eight at a time.

/// <summary>Arguments of the masked softmax kernel that moves one element per lane (any storage type).</summary>
/// <typeparam name="T">Storage type of the block-sparse tensors.</typeparam>
public readonly struct SoftmaxParams<T>
    where T : unmanaged
{
    /// <summary>Scores <c>[batch, heads, blocks, block, block]</c>.</summary>
    public ArrayView<T> Input { get; init; }

    /// <summary>Probabilities, same shape; every element is written.</summary>
    public ArrayView<T> Output { get; init; }

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

/// <summary>Arguments of the softmax gradient kernel that moves one element per lane (any storage type).</summary>
/// <typeparam name="T">Storage type.</typeparam>
public readonly struct SoftmaxGradParams<T>
    where T : unmanaged
{
    /// <summary>Forward probabilities.</summary>
    public ArrayView<T> Probabilities { get; init; }

    /// <summary>Gradient of the probabilities.</summary>
    public ArrayView<T> OutputGrad { get; init; }

    /// <summary>Gradient of the scores; every element is written.</summary>
    public ArrayView<T> InputGrad { get; init; }

    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }

    /// <summary>The forward scale.</summary>
    public float Scale { get; init; }
}

/// <summary>The softmax kernel family and its launchers.</summary>
public static partial class SoftmaxKernels
{
    private const int WarpSize = 32;
    private const int RowsPerGroup = 4;

    /// <summary>Runs the masked (or plain) softmax.</summary>
    public static void Launch<T, TElement>(Accelerator accelerator, in SoftmaxParams<T> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        KernelLoader.Get<SoftmaxParams<T>>(accelerator, Forward<T, TElement>)(accelerator.DefaultStream, Config(p.Dims), p);
    }

    /// <summary>Runs the softmax gradient.</summary>
    public static void LaunchGrad<T, TElement>(Accelerator accelerator, in SoftmaxGradParams<T> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        KernelLoader.Get<SoftmaxGradParams<T>>(accelerator, Backward<T, TElement>)(accelerator.DefaultStream, Config(p.Dims), p);
    }

    // ctx is a multiple of the block size (at least 16), so rows split evenly into groups of four.
    private static KernelConfig Config(Dims dims) => new(new Index2D(dims.Ctx / RowsPerGroup, dims.Batch * dims.Heads), new Index2D(WarpSize * RowsPerGroup, 1));

    internal static void Forward<T, TElement>(SoftmaxParams<T> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
    {
        var element = default(TElement);
        var row = new RowCursor(p.Plan, p.Dims);
        var lane = Group.IdxX % WarpSize;

        // Online softmax: a running max and a sum rescaled whenever the max grows.
        var max = float.NegativeInfinity;
        var sum = 0f;
        for (var entry = row.Start; entry < row.End; entry++)
        {
            var block = new BlockInRow(row, p.Plan, entry);
            for (var c = lane; c < row.BlockSize; c += WarpSize)
            {
                if (IsAllowed(p, row, block, c))
                {
                    var x = element.ToFloat(p.Input[block.ElementBase + c]) * p.Scale;
                    if (x > max)
                    {
                        sum = sum * XMath.Exp(max - x) + 1f;
                        max = x;
                    }
                    else
                    {
                        sum += XMath.Exp(x - max);
                    }
                }
            }
        }

        // Combine lanes: a lane that saw nothing has max -inf and sum 0 and must contribute nothing (not exp(NaN)).
        var rowMax = WarpMax(max);
        sum = max == float.NegativeInfinity ? 0f : sum * XMath.Exp(max - rowMax);
        max = rowMax;
        sum = WarpSum(sum);
        var inverse = sum > 0f ? 1f / sum : 0f;
        for (var entry = row.Start; entry < row.End; entry++)
        {
            var block = new BlockInRow(row, p.Plan, entry);
            for (var c = lane; c < row.BlockSize; c += WarpSize)
            {
                var index = block.ElementBase + c;
                var y = IsAllowed(p, row, block, c) ? XMath.Exp(element.ToFloat(p.Input[index]) * p.Scale - max) * inverse : 0f;
                p.Output[index] = element.FromFloat(y);
            }
        }
    }

    internal static void Backward<T, TElement>(SoftmaxGradParams<T> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
    {
        var element = default(TElement);
        var row = new RowCursor(p.Plan, p.Dims);
        var lane = Group.IdxX % WarpSize;
        var dot = 0f;
        for (var entry = row.Start; entry < row.End; entry++)
        {
            var block = new BlockInRow(row, p.Plan, entry);
            for (var c = lane; c < row.BlockSize; c += WarpSize)
            {
                var index = block.ElementBase + c;
                dot += element.ToFloat(p.OutputGrad[index]) * element.ToFloat(p.Probabilities[index]);
            }
        }

        dot = WarpSum(dot);
        for (var entry = row.Start; entry < row.End; entry++)
        {
            var block = new BlockInRow(row, p.Plan, entry);
            for (var c = lane; c < row.BlockSize; c += WarpSize)
            {
                var index = block.ElementBase + c;
                var y = element.ToFloat(p.Probabilities[index]);
                p.InputGrad[index] = element.FromFloat((element.ToFloat(p.OutputGrad[index]) - dot) * y * p.Scale);
            }
        }
    }

    private static bool IsAllowed<T>(in SoftmaxParams<T> p, in RowCursor row, in BlockInRow block, int c)
        where T : unmanaged
    {
        var key = block.FirstKey + c;
        if (key >= p.AutoregressAtKey && key > row.Query)
        {
            return false;
        }

        if (p.UseMask == 0 || block.IsFull)
        {
            return true;
        }

        var bit = row.RowInBlock * row.BlockSize + c;
        return (p.Plan.Masks[block.MaskBase + (bit >> 5)] & (1u << (bit & 31))) != 0;
    }

    /// <summary>What the row needs of one of its blocks, read once per block.</summary>
    private readonly struct BlockInRow
    {
        public BlockInRow(in RowCursor row, PlanTables plan, int entry)
        {
            var planBlock = row.PlanBlock(entry);
            FirstKey = plan.BlockColumns[planBlock] * row.BlockSize;
            IsFull = plan.BlockIsFull[planBlock] != 0;
            MaskBase = (long)planBlock * plan.WordsPerBlock;
            ElementBase = row.BlockRowStart(entry);
        }

        public int FirstKey { get; }

        public bool IsFull { get; }

        public long MaskBase { get; }

        public long ElementBase { get; }
    }

    private static float WarpMax(float value)
    {
        for (var offset = WarpSize / 2; offset > 0; offset /= 2)
        {
            value = XMath.Max(value, Warp.ShuffleXor(value, offset));
        }

        return value;
    }

    private static float WarpSum(float value)
    {
        for (var offset = WarpSize / 2; offset > 0; offset /= 2)
        {
            value += Warp.ShuffleXor(value, offset);
        }

        return value;
    }

    /// <summary>Where query row <c>Grid.IdxX</c> of head <c>Grid.IdxY</c> finds its blocks.</summary>
    private readonly struct RowCursor
    {
        private readonly PlanTables plan;
        private readonly int layoutHead;
        private readonly long headBase;

        public RowCursor(PlanTables plan, Dims dims)
        {
            this.plan = plan;
            Query = Grid.IdxX * RowsPerGroup + Group.IdxX / WarpSize;
            var head = Grid.IdxY % dims.Heads;
            layoutHead = plan.LayoutHead(head);
            BlockSize = plan.BlockSize;
            RowInBlock = Query % BlockSize;
            var blockRow = Query / BlockSize;
            Start = plan.RowOffsets[layoutHead * (plan.BlockCount + 1) + blockRow];
            End = plan.RowOffsets[layoutHead * (plan.BlockCount + 1) + blockRow + 1];
            headBase = (long)Grid.IdxY * plan.BlocksPerHead;
        }

        public int Query { get; }

        public int BlockSize { get; }

        public int RowInBlock { get; }

        public int Start { get; }

        public int End { get; }

        public int PlanBlock(int entry) => layoutHead * plan.BlocksPerHead + plan.RowBlocks[entry];

        public long BlockRowStart(int entry) => ((headBase + plan.RowBlocks[entry]) * BlockSize + RowInBlock) * BlockSize;
    }
}
