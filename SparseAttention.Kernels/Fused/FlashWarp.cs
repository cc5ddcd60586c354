using ILGPU;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// Where one warp of a fused kernel works: 16 tokens (queries, or keys when <c>transposed</c>) of the group's block row
/// (block column), walking that row's (column's) LUT entries.
/// </summary>
internal readonly struct FlashWarp
{
    private readonly PlanTables plan;
    private readonly bool transposed;
    private readonly int layoutHead;

    public FlashWarp(in FlashProblem p, bool transposed)
    {
        plan = p.Plan;
        this.transposed = transposed;
        var lane = Warp.LaneIdx;
        G = lane >> 2;
        T = lane & 3;
        N = Grid.IdxY / p.Dims.Heads;
        H = Grid.IdxY % p.Dims.Heads;
        layoutHead = plan.LayoutHead(H);
        InBlock = Group.IdxX >> 5 << 4;
        First = Grid.IdxX * plan.BlockSize + InBlock;
        var offsets = transposed ? plan.ColumnOffsets : plan.RowOffsets;
        Start = offsets[layoutHead * (plan.BlockCount + 1) + Grid.IdxX];
        End = offsets[layoutHead * (plan.BlockCount + 1) + Grid.IdxX + 1];
        TokenStep = (long)p.Dims.Heads * p.Dims.HeadDim;
        EightRowPairs = 4 * TokenStep;
    }

    /// <summary>Lane row group.</summary>
    public int G { get; }

    /// <summary>Lane within its row group.</summary>
    public int T { get; }

    /// <summary>Sequence.</summary>
    public int N { get; }

    /// <summary>Head.</summary>
    public int H { get; }

    /// <summary>The warp's first token within its block.</summary>
    public int InBlock { get; }

    /// <summary>The warp's first token.</summary>
    public int First { get; }

    /// <summary>First LUT entry.</summary>
    public int Start { get; }

    /// <summary>One past the last LUT entry.</summary>
    public int End { get; }

    /// <summary>Elements between consecutive tokens.</summary>
    public long TokenStep { get; }

    /// <summary>Element pairs between token r and r+8.</summary>
    public long EightRowPairs { get; }

    /// <summary>
    /// Which elements of the 16x16 tile at <paramref name="chunk"/> of <paramref name="block"/> this lane keeps
    /// (<see cref="ScoreTile"/>'s bit order); false when no lane of the warp keeps any, so the tile is skipped.
    /// </summary>
    public bool Keeps(in FlashProblem p, in PairedBlock block, int chunk, out int allowed)
    {
        allowed = ChunkMask.All;
        var other = block.Other + chunk;
        var lastKey = transposed ? First + 15 : other + 15;
        if (block.IsFull && lastKey < p.AutoregressAtKey)
        {
            return true;
        }

        allowed = transposed
            ? ChunkMask.ForKeys(p.Plan, block.MaskBase, block.IsFull, InBlock, chunk, First, other, p.AutoregressAtKey)
            : ChunkMask.ForQueries(p.Plan, block.MaskBase, block.IsFull, InBlock, chunk, First, other, p.AutoregressAtKey);
        return ChunkMask.AnyInWarp(allowed);
    }

    /// <summary>The block of LUT entry <paramref name="entry"/>.</summary>
    public PairedBlock Block(int entry)
    {
        var planBlock = layoutHead * plan.BlocksPerHead + (transposed ? plan.ColumnBlocks[entry] : plan.RowBlocks[entry]);
        var other = transposed ? plan.BlockRows[planBlock] : plan.BlockColumns[planBlock];
        return new PairedBlock(other * plan.BlockSize, plan.BlockIsFull[planBlock] != 0, (long)planBlock * plan.WordsPerBlock);
    }
}

/// <summary>A block met on a LUT walk: the first token on its other side (keys, or queries when transposed), whether its mask is all ones, where its mask starts.</summary>
internal readonly record struct PairedBlock(int Other, bool IsFull, long MaskBase);
