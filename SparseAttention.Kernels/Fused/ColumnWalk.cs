using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// A group's walk down its one block column (blocks of 64 and 128) in steps of 64 queries, the transposed twin of
/// <see cref="RowWalk"/>. A column's LUT entries are block numbers whose row and fullness take a second load, so the
/// walk reads two blocks ahead: at each block it issues the row and fullness of the block after (whose number it read a
/// block before) and the number of the block after that, and every load is first used a step later (the merged walk
/// of <see cref="BlockWalk"/> chains three dependent loads at the top of each step).
/// </summary>
internal readonly struct ColumnWalk
{
    /// <summary>Queries per step.</summary>
    public const int StepTokens = 64;

    private readonly int entry, end, headBlocks, row, full, nextBlock, nextRow, nextFull, farBlock;

    private ColumnWalk(int entry, int end, int headBlocks, int block, int row, int tokenInBlock, int full, int nextBlock, int nextRow, int nextFull, int farBlock, int blockSize)
    {
        this.entry = entry;
        this.end = end;
        this.headBlocks = headBlocks;
        this.row = row;
        this.full = full;
        this.nextBlock = nextBlock;
        this.nextRow = nextRow;
        this.nextFull = nextFull;
        this.farBlock = farBlock;
        Block = block;
        TokenInBlock = tokenInBlock;
        Token = entry < end ? (row * blockSize) + tokenInBlock : -1;
    }

    /// <summary>The step's block (plan block number).</summary>
    public int Block { get; }

    /// <summary>The first query of this step; negative when the walk is over.</summary>
    public int Token { get; }

    /// <summary>The step's first query within its block.</summary>
    public int TokenInBlock { get; }

    /// <summary>Whether the step's block has every element allowed.</summary>
    public bool IsFull => full != 0;

    /// <summary>Whether every step has been taken.</summary>
    public bool Done => Token < 0;

    /// <summary>The first step down block column <paramref name="column"/> of layout head <paramref name="layoutHead"/>.</summary>
    public static ColumnWalk Start(in PlanTables plan, int layoutHead, int column)
    {
        var offset = layoutHead * (plan.BlockCount + 1) + column;
        int start = plan.ColumnOffsets[offset], end = plan.ColumnOffsets[offset + 1], headBlocks = layoutHead * plan.BlocksPerHead;
        int block = BlockAt(plan, headBlocks, start, end), next = BlockAt(plan, headBlocks, start + 1, end);
        return new ColumnWalk(start, end, headBlocks, block, Row(plan, block), 0, Full(plan, block), next, Row(plan, next), Full(plan, next), BlockAt(plan, headBlocks, start + 2, end), plan.BlockSize);
    }

    /// <summary>The step after this one: the block's next 64 queries, or the next block, whose successors' loads it issues.</summary>
    public ColumnWalk Next(in PlanTables plan)
    {
        if (TokenInBlock + StepTokens < plan.BlockSize)
        {
            return new ColumnWalk(entry, end, headBlocks, Block, row, TokenInBlock + StepTokens, full, nextBlock, nextRow, nextFull, farBlock, plan.BlockSize);
        }

        return new ColumnWalk(entry + 1, end, headBlocks, nextBlock, nextRow, 0, nextFull, farBlock, Row(plan, farBlock), Full(plan, farBlock), BlockAt(plan, headBlocks, entry + 3, end), plan.BlockSize);
    }

    // The plan block number of a LUT entry, -1 past the end.
    private static int BlockAt(in PlanTables plan, int headBlocks, int entry, int end) => entry < end ? headBlocks + plan.ColumnBlocks[entry] : -1;

    private static int Row(in PlanTables plan, int block) => block >= 0 ? plan.BlockRows[block] : 0;

    private static int Full(in PlanTables plan, int block) => block >= 0 ? plan.BlockIsFull[block] : 0;
}
