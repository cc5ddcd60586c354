using ILGPU;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

/// <summary>
/// Where one warp of an SDD tensor-core kernel works: a 16x16 tile of one enabled block, lane <c>(g, t)</c> owning
/// outputs (g, 2t..2t+1) and (g+8, 2t..2t+1) of the two 16x8 halves. Used by the TF32 kernel; the 16-bit kernels stage through shared memory.
/// </summary>
internal readonly struct SddWarpTile
{
    public SddWarpTile(in PlanTables plan, in Dims dims)
    {
        var tilesPerBlock = plan.BlockSize / 16;
        var warpTile = Grid.IdxX * TensorCore.WarpsPerGroup + Group.IdxX / 32;
        IsActive = warpTile < Count(plan);
        var lane = Group.IdxX % 32;
        G = lane / 4;
        T = lane % 4;
        N = Grid.IdxY / dims.Heads;
        H = Grid.IdxY % dims.Heads;
        var lh = plan.LayoutHead(H);
        Block = IsActive ? warpTile / (tilesPerBlock * tilesPerBlock) : 0;
        var tileInBlock = warpTile % (tilesPerBlock * tilesPerBlock);
        int tileRow = tileInBlock / tilesPerBlock * 16, tileColumn = tileInBlock % tilesPerBlock * 16;
        LeftRow = plan.BlockRows[lh * plan.BlocksPerHead + Block] * plan.BlockSize + tileRow;
        RightRow = plan.BlockColumns[lh * plan.BlocksPerHead + Block] * plan.BlockSize + tileColumn;
        OutputIndex = (((long)N * dims.Heads + H) * plan.BlocksPerHead + Block) * plan.BlockSize * plan.BlockSize
            + (long)(tileRow + G) * plan.BlockSize + tileColumn + 2 * T;
    }

    /// <summary>False for the spare warps of the last group.</summary>
    public bool IsActive { get; }

    /// <summary>Lane row group.</summary>
    public int G { get; }

    /// <summary>Lane within its row group.</summary>
    public int T { get; }

    /// <summary>Sequence.</summary>
    public int N { get; }

    /// <summary>Head.</summary>
    public int H { get; }

    /// <summary>Block number within the head.</summary>
    public int Block { get; }

    /// <summary>First token row of the left operand's tile.</summary>
    public int LeftRow { get; }

    /// <summary>First token row of the right operand's tile.</summary>
    public int RightRow { get; }

    /// <summary>Weight index of this lane's first output (g, 2t).</summary>
    public long OutputIndex { get; }

    /// <summary>Warp tiles of one (sequence, head): 16x16 tiles of every enabled block.</summary>
    public static int Count(in PlanTables plan) => plan.BlocksPerHead * (plan.BlockSize / 16) * (plan.BlockSize / 16);
}

/// <summary>
/// Where one warp of a DSD tensor-core kernel works: 16 output rows by 16 features, summing the blocks of one LUT
/// row (plain) or column (transposed). Used by the TF32 kernel; the 16-bit kernels stage through shared memory.
/// </summary>
internal readonly struct DsdWarpTile
{
    private readonly PlanTables plan;
    private readonly Dims dims;
    private readonly bool transposed;

    public DsdWarpTile(in PlanTables plan, in Dims dims, bool transposed)
    {
        this.plan = plan;
        this.dims = dims;
        this.transposed = transposed;
        TokenStep = (long)dims.Heads * dims.HeadDim;
        var featureTiles = dims.HeadDim / 16;
        var warpTile = Grid.IdxX * TensorCore.WarpsPerGroup + Group.IdxX / 32;
        IsActive = warpTile < Count(dims);
        var lane = Group.IdxX % 32;
        G = lane / 4;
        T = lane % 4;
        N = Grid.IdxY / dims.Heads;
        H = Grid.IdxY % dims.Heads;
        LayoutHead = plan.LayoutHead(H);
        var rowTile = IsActive ? warpTile / featureTiles : 0;
        D0 = warpTile % featureTiles * 16;
        var outBlock = rowTile * 16 / plan.BlockSize;
        RowInBlock = rowTile * 16 % plan.BlockSize;
        var offsets = transposed ? plan.ColumnOffsets : plan.RowOffsets;
        Start = offsets[LayoutHead * (plan.BlockCount + 1) + outBlock];
        End = offsets[LayoutHead * (plan.BlockCount + 1) + outBlock + 1];
        OutputIndex = dims.Index(N, outBlock * plan.BlockSize + RowInBlock + G, H, D0 + 2 * T);
        ARowStep = transposed ? 1L : plan.BlockSize;
        AColumnStep = transposed ? plan.BlockSize : 1L;
    }

    /// <summary>False for the spare warps of the last group.</summary>
    public bool IsActive { get; }

    /// <summary>Lane row group.</summary>
    public int G { get; }

    /// <summary>Lane within its row group.</summary>
    public int T { get; }

    /// <summary>Sequence.</summary>
    public int N { get; }

    /// <summary>Head.</summary>
    public int H { get; }

    /// <summary>Layout head of <see cref="H"/>.</summary>
    public int LayoutHead { get; }

    /// <summary>First feature of the tile.</summary>
    public int D0 { get; }

    /// <summary>First output row within its block.</summary>
    public int RowInBlock { get; }

    /// <summary>First LUT entry to sum.</summary>
    public int Start { get; }

    /// <summary>One past the last LUT entry.</summary>
    public int End { get; }

    /// <summary>Dense index of this lane's first output (g, 2t).</summary>
    public long OutputIndex { get; }

    /// <summary>Weight index step between rows of A (W, or W transposed).</summary>
    public long ARowStep { get; }

    /// <summary>Weight index step between columns of A.</summary>
    public long AColumnStep { get; }

    /// <summary>Dense index step between consecutive tokens.</summary>
    public long TokenStep { get; }

    /// <summary>Warp tiles of one (sequence, head): 16 rows by 16 features over the whole sequence.</summary>
    public static int Count(in Dims dims) => dims.Ctx / 16 * (dims.HeadDim / 16);

    /// <summary>Block number of LUT entry <paramref name="entry"/>.</summary>
    public int Block(int entry) => transposed ? plan.ColumnBlocks[entry] : plan.RowBlocks[entry];

    /// <summary>Weight index of this lane's A element (g, 2t) of block <paramref name="block"/> at k = 0.</summary>
    public long WeightIndex(int block) =>
        (((long)N * dims.Heads + H) * plan.BlocksPerHead + block) * plan.BlockSize * plan.BlockSize + (RowInBlock + G) * ARowStep;

    /// <summary>Dense index of token <paramref name="tokenInBlock"/> of the block paired with <paramref name="block"/>, feature <paramref name="feature"/>.</summary>
    public long DenseIndex(int block, int tokenInBlock, int feature)
    {
        var other = transposed ? plan.BlockRows[LayoutHead * plan.BlocksPerHead + block] : plan.BlockColumns[LayoutHead * plan.BlocksPerHead + block];
        return dims.Index(N, other * plan.BlockSize + tokenInBlock, H, feature);
    }
}
