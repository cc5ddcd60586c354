using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// A fused kernel's walk over the blocks of its group's tokens, the same in every thread of a group, one step of
/// tokens on the other side at a time: key steps along block rows (forward, dQ) or, transposed, query steps along block
/// columns (dK, dV). A group owns 64 tokens: part of one block row or column (blocks of 64 and 128), or two of them, A
/// and B (blocks of 32), whose LUT rows it merges in order so that one staged tile serves both where both have the
/// block. A block of 128 tokens is two steps of 64.
/// </summary>
internal readonly struct BlockWalk
{
    private readonly int entryA, endA, entryB, endB, step;

    private BlockWalk(in PlanTables plan, int layoutHead, int tokens, bool transposed, int entryA, int endA, int entryB, int endB, int step)
    {
        this.entryA = entryA;
        this.endA = endA;
        this.entryB = entryB;
        this.endB = endB;
        this.step = step;
        int blockA = Block(plan, layoutHead, transposed, entryA, endA), blockB = Block(plan, layoutHead, transposed, entryB, endB);
        int otherA = Other(plan, transposed, blockA), otherB = Other(plan, transposed, blockB);
        var other = otherA < otherB ? otherA : otherB;
        BlockA = otherA == other ? blockA : -1;
        BlockB = otherB == other ? blockB : -1;
        TokenInBlock = step * tokens;
        Token = other == int.MaxValue ? -1 : other * plan.BlockSize + TokenInBlock;
    }

    /// <summary>The first token of this step (a key, or a query when transposed); negative when the walk is over.</summary>
    public int Token { get; }

    /// <summary>The step's first token within its block.</summary>
    public int TokenInBlock { get; }

    /// <summary>A's block (plan block number) at this step, or -1 where A does not have it.</summary>
    public int BlockA { get; }

    /// <summary>B's block at this step, or -1.</summary>
    public int BlockB { get; }

    /// <summary>Whether every step has been taken.</summary>
    public bool Done => Token < 0;

    /// <summary>
    /// The first step over block rows (block columns when <paramref name="transposed"/>) <paramref name="a"/> and
    /// <paramref name="b"/> (equal for blocks of 64 and more; B past the last is empty), in steps of <paramref name="tokens"/>.
    /// </summary>
    public static BlockWalk Start(in PlanTables plan, int layoutHead, int tokens, int a, int b, bool transposed)
    {
        var offsets = transposed ? plan.ColumnOffsets : plan.RowOffsets;
        var first = layoutHead * (plan.BlockCount + 1);
        int startA = offsets[first + a], endA = offsets[first + a + 1];
        int startB = b < plan.BlockCount ? offsets[first + b] : 0, endB = b < plan.BlockCount ? offsets[first + b + 1] : 0;
        return new BlockWalk(plan, layoutHead, tokens, transposed, startA, endA, startB, endB, 0);
    }

    /// <summary>The step after this one.</summary>
    public BlockWalk Next(in PlanTables plan, int layoutHead, int tokens, bool transposed)
    {
        if ((step + 1) * tokens < plan.BlockSize)
        {
            return new BlockWalk(plan, layoutHead, tokens, transposed, entryA, endA, entryB, endB, step + 1);
        }

        return new BlockWalk(plan, layoutHead, tokens, transposed, BlockA < 0 ? entryA : entryA + 1, endA, BlockB < 0 ? entryB : entryB + 1, endB, 0);
    }

    // The plan block number of a LUT entry, -1 past the end.
    private static int Block(in PlanTables plan, int layoutHead, bool transposed, int entry, int end) =>
        entry < end ? layoutHead * plan.BlocksPerHead + (transposed ? plan.ColumnBlocks[entry] : plan.RowBlocks[entry]) : -1;

    // The block's index on the walked side (its column, or its row when transposed); past the end, after every block.
    private static int Other(in PlanTables plan, bool transposed, int block) =>
        block < 0 ? int.MaxValue : transposed ? plan.BlockRows[block] : plan.BlockColumns[block];
}
