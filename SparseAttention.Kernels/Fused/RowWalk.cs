using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// A group's walk along its one block row (blocks of 64 and 128) in steps of 64 keys, reading the tables a block ahead
/// of their use. Blocks are numbered row-major (<c>BlockSparsePlan</c>), so a row's LUT entries are the plan block
/// numbers themselves and a step needs only its block's column and fullness: two loads that depend on no other load,
/// issued when the walk enters the block before, so their latency hides behind a whole step (the merged walk of
/// <see cref="BlockWalk"/> chains three dependent loads per step, and they stalled the Hopper forward, ncu on an H200).
/// </summary>
internal readonly struct RowWalk
{
    /// <summary>Keys per step.</summary>
    public const int StepTokens = 64;

    private readonly int end, full, aheadColumn, aheadFull;

    private RowWalk(int entry, int end, int token, int tokenInBlock, int full, int aheadColumn, int aheadFull)
    {
        Block = entry;
        this.end = end;
        this.full = full;
        this.aheadColumn = aheadColumn;
        this.aheadFull = aheadFull;
        TokenInBlock = tokenInBlock;
        Token = entry < end ? token : -1;
    }

    /// <summary>The step's block (plan block number).</summary>
    public int Block { get; }

    /// <summary>The first key of this step; negative when the walk is over.</summary>
    public int Token { get; }

    /// <summary>The step's first key within its block.</summary>
    public int TokenInBlock { get; }

    /// <summary>Whether the step's block has every element allowed.</summary>
    public bool IsFull => full != 0;

    /// <summary>Whether every step has been taken.</summary>
    public bool Done => Token < 0;

    /// <summary>The first step along block row <paramref name="row"/> of layout head <paramref name="layoutHead"/>.</summary>
    public static RowWalk Start(in PlanTables plan, int layoutHead, int row)
    {
        var offset = layoutHead * (plan.BlockCount + 1) + row;
        int start = plan.RowOffsets[offset], end = plan.RowOffsets[offset + 1];
        return new RowWalk(start, end, Column(plan, start, end) * plan.BlockSize, 0, Full(plan, start, end), Column(plan, start + 1, end), Full(plan, start + 1, end));
    }

    /// <summary>The step after this one: the block's next 64 keys, or the next block, whose successor's loads it issues.</summary>
    public RowWalk Next(in PlanTables plan)
    {
        if (TokenInBlock + StepTokens < plan.BlockSize)
        {
            return new RowWalk(Block, end, Token + StepTokens, TokenInBlock + StepTokens, full, aheadColumn, aheadFull);
        }

        var entry = Block + 1;
        return new RowWalk(entry, end, aheadColumn * plan.BlockSize, 0, aheadFull, Column(plan, entry + 1, end), Full(plan, entry + 1, end));
    }

    private static int Column(in PlanTables plan, int entry, int end) => entry < end ? plan.BlockColumns[entry] : -1;

    private static int Full(in PlanTables plan, int entry, int end) => entry < end ? plan.BlockIsFull[entry] : 0;
}
