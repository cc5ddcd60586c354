using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// Where a group of the row-walking fused kernels (forward, dQ) works: 64 query rows of one (sequence, head), 16 per warp,
/// part of one block row (blocks of 64 and 128) or two block rows A and B (blocks of 32: warps 0-1 row A, warps 2-3 row
/// B), and the two tiles of token rows it stages in shared memory.
/// </summary>
internal readonly struct RowGroup
{
    /// <summary>Query rows of one group.</summary>
    public const int Rows = 64;

    private const int Warps = Rows / 16;

    // The CPU accelerator's mma emulation swaps fragments through the start of the dynamic shared memory.
    private const int EmulationBytes = Warps * 32 * 6 * 4;

    private readonly PlanTables plan;
    private readonly int layoutHead, rowA, rowB, rowInBlock;
    private readonly bool inRowB;

    /// <summary>The group of <c>Grid.IdxX</c>, (sequence, head) <c>Grid.IdxY</c>, for tiles of <paramref name="features"/> features.</summary>
    public RowGroup(in FlashProblem problem, int features)
    {
        var dims = problem.Dims;
        plan = problem.Plan;
        var warp = Group.IdxX >> 5;
        var lane = Group.IdxX & 31;
        G = lane >> 2;
        T = lane & 3;
        var n = Grid.IdxY / dims.Heads;
        var h = Grid.IdxY - n * dims.Heads;
        layoutHead = plan.LayoutHead(h);
        FirstQuery = Grid.IdxX * Rows;
        WarpRow = 16 * warp;
        WarpQuery = FirstQuery + WarpRow;
        rowA = FirstQuery / plan.BlockSize;
        var split = plan.BlockSize < Rows;
        rowB = split ? rowA + 1 : rowA;
        inRowB = split && warp >= 2;
        rowInBlock = WarpQuery - (inRowB ? rowB : rowA) * plan.BlockSize;
        TokenStep = (long)dims.Heads * features;
        HeadZero = dims.Index(n, 0, h, 0);
        var shared = SharedMemory.GetDynamic<uint>();
        var firstByte = CudaAsm.IsSupported ? 0 : EmulationBytes;
        KeyRows = new StagedRows(shared, firstByte, features);
        ValueRows = new StagedRows(shared, firstByte + TileBytes(features), features);
        Share = new StageShare(features);
    }

    /// <summary>This lane's row group within its warp's m16n8 fragments (rows g and g+8).</summary>
    public int G { get; }

    /// <summary>This lane within its row group (columns 2t, 2t+1).</summary>
    public int T { get; }

    /// <summary>The group's first query.</summary>
    public int FirstQuery { get; }

    /// <summary>This warp's first row within the group.</summary>
    public int WarpRow { get; }

    /// <summary>This warp's first query.</summary>
    public int WarpQuery { get; }

    /// <summary>Elements between consecutive tokens.</summary>
    public long TokenStep { get; }

    /// <summary>Element (sequence, token 0, head, feature 0).</summary>
    public long HeadZero { get; }

    /// <summary>The first staged tile (keys).</summary>
    public StagedRows KeyRows { get; }

    /// <summary>The second staged tile (values; queries and output gradients before the walk).</summary>
    public StagedRows ValueRows { get; }

    /// <summary>This thread's share of each staging.</summary>
    public StageShare Share { get; }

    /// <summary>The grid, group and dynamic shared memory of a row-walking kernel.</summary>
    public static KernelConfig Config(Accelerator accelerator, in Dims dims)
    {
        var emulation = accelerator.AcceleratorType == AcceleratorType.Cuda ? 0 : EmulationBytes;
        return new KernelConfig(
            new Index3D((dims.Ctx + Rows - 1) / Rows, dims.Batch * dims.Heads, 1),
            new Index3D(32 * Warps, 1, 1),
            SharedMemoryConfig.RequestDynamic<byte>(emulation + 2 * TileBytes(dims.HeadDim)));
    }

    /// <summary>The walk over the group's key steps of <paramref name="keys"/> keys.</summary>
    public KeyWalk Walk(int keys) => KeyWalk.Start(plan, layoutHead, keys, rowA, rowB);

    /// <summary>The step after <paramref name="walk"/>.</summary>
    public KeyWalk Next(in KeyWalk walk, int keys) => walk.Next(plan, layoutHead, keys);

    /// <summary>This warp's block at <paramref name="walk"/>'s step, or -1 where its block row does not have it.</summary>
    public int Block(in KeyWalk walk) => inRowB ? walk.BlockB : walk.BlockA;

    /// <summary>Element (sequence, <paramref name="token"/>, head, feature 0).</summary>
    public long Token(int token) => HeadZero + token * TokenStep;

    /// <summary>
    /// Scales this warp's scores of the step by <paramref name="scaleLog2"/> and masks what the block's element mask and
    /// the decoding rule remove; only partial blocks (and blocks the rule reaches) pay for the mask, and a warp without
    /// the block (<paramref name="block"/> -1) masks everything.
    /// </summary>
    public void ScaleAndMask<TSlab>(ref TSlab slab, in FlashProblem problem, in KeyWalk walk, int block, float scaleLog2)
        where TSlab : struct, IScoreSlab
    {
        if (block < 0)
        {
            slab.MaskAll();
            return;
        }

        var isFull = plan.BlockIsFull[block] != 0;
        if (isFull && walk.Key + default(TSlab).Keys <= problem.AutoregressAtKey)
        {
            slab.Scale(scaleLog2);
        }
        else
        {
            slab.ScaleAndMask(scaleLog2, new SlabSite(plan, (long)block * plan.WordsPerBlock, isFull, rowInBlock, walk.KeyInBlock, WarpQuery, walk.Key, problem.AutoregressAtKey), 0);
        }
    }

    private static int TileBytes(int features) => Rows * 4 * StagedRows.RowWords(features);
}
