using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// The forward's walk over key steps, the same in every thread of a group. A group owns 64 query rows: part of one
/// block row (blocks of 64 and 128), or two block rows A and B (blocks of 32), whose LUT rows it merges in key order so
/// that one staged K/V tile serves both where both have the block. A block of 128 keys is two steps of 64.
/// </summary>
internal readonly struct KeyWalk
{
    private readonly int entryA, endA, entryB, endB, step;

    private KeyWalk(in PlanTables plan, int layoutHead, int keys, int entryA, int endA, int entryB, int endB, int step)
    {
        this.entryA = entryA;
        this.endA = endA;
        this.entryB = entryB;
        this.endB = endB;
        this.step = step;
        int blockA = Block(plan, layoutHead, entryA, endA), blockB = Block(plan, layoutHead, entryB, endB);
        int columnA = blockA < 0 ? int.MaxValue : plan.BlockColumns[blockA], columnB = blockB < 0 ? int.MaxValue : plan.BlockColumns[blockB];
        var column = columnA < columnB ? columnA : columnB;
        BlockA = columnA == column ? blockA : -1;
        BlockB = columnB == column ? blockB : -1;
        KeyInBlock = step * keys;
        Key = column == int.MaxValue ? -1 : column * plan.BlockSize + KeyInBlock;
    }

    /// <summary>The first key of this step; negative when the walk is over.</summary>
    public int Key { get; }

    /// <summary>The step's first key within its block.</summary>
    public int KeyInBlock { get; }

    /// <summary>Row A's block (plan block number) at this step, or -1 where row A does not have it.</summary>
    public int BlockA { get; }

    /// <summary>Row B's block at this step, or -1.</summary>
    public int BlockB { get; }

    /// <summary>Whether every step has been taken.</summary>
    public bool Done => Key < 0;

    /// <summary>The first step over block rows <paramref name="rowA"/> and <paramref name="rowB"/> (equal for blocks of 64 and more; B past the last row is empty).</summary>
    public static KeyWalk Start(in PlanTables plan, int layoutHead, int keys, int rowA, int rowB)
    {
        var offsets = layoutHead * (plan.BlockCount + 1);
        int startA = plan.RowOffsets[offsets + rowA], endA = plan.RowOffsets[offsets + rowA + 1];
        int startB = rowB < plan.BlockCount ? plan.RowOffsets[offsets + rowB] : 0, endB = rowB < plan.BlockCount ? plan.RowOffsets[offsets + rowB + 1] : 0;
        return new KeyWalk(plan, layoutHead, keys, startA, endA, startB, endB, 0);
    }

    /// <summary>The step after this one.</summary>
    public KeyWalk Next(in PlanTables plan, int layoutHead, int keys)
    {
        if ((step + 1) * keys < plan.BlockSize)
        {
            return new KeyWalk(plan, layoutHead, keys, entryA, endA, entryB, endB, step + 1);
        }

        return new KeyWalk(plan, layoutHead, keys, BlockA < 0 ? entryA : entryA + 1, endA, BlockB < 0 ? entryB : entryB + 1, endB, 0);
    }

    // The plan block number of a LUT entry, -1 past the row's end.
    private static int Block(in PlanTables plan, int layoutHead, int entry, int end) =>
        entry < end ? layoutHead * plan.BlocksPerHead + plan.RowBlocks[entry] : -1;
}
