using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// Where a group of the fused kernels works: 64 tokens of one (sequence, head), 16 per warp, queries walking block rows
/// (forward, dQ) or, transposed, keys walking block columns (dK, dV); part of one block row or column (blocks of 64 and
/// 128) or two of them, A and B (blocks of 32: warps 0-1 A, warps 2-3 B); and the tiles of token rows it stages in
/// shared memory.
/// </summary>
internal readonly struct TokenGroup
{
    /// <summary>Tokens of one group.</summary>
    public const int Rows = 64;

    private const int Warps = Rows / 16;

    /// <summary>Threads of one group.</summary>
    public const int Threads = 32 * Warps;

    // The CPU accelerator's mma emulation swaps fragments through the start of the dynamic shared memory.
    private const int EmulationBytes = Warps * MmaEmulation.WarpBytes;

    private readonly PlanTables plan;
    private readonly ArrayView<uint> shared;
    private readonly int layoutHead, rowA, rowB, rowInBlock, firstByte, features;
    private readonly bool inRowB, transposed;

    /// <summary>
    /// The group of <c>Grid.IdxX</c>, (sequence, head) <c>Grid.IdxY</c>, for tiles of <paramref name="features"/>
    /// features; <paramref name="transposed"/>: its tokens are keys and it walks block columns.
    /// </summary>
    public TokenGroup(in FlashProblem problem, int features, bool transposed)
    {
        this.transposed = transposed;
        this.features = features;
        var dims = problem.Dims;
        plan = problem.Plan;
        var warp = Group.IdxX >> 5;
        var lane = Group.IdxX & 31;
        G = lane >> 2;
        T = lane & 3;
        var n = Grid.IdxY / dims.Heads;
        var h = Grid.IdxY - n * dims.Heads;
        layoutHead = plan.LayoutHead(h);
        FirstToken = Grid.IdxX * Rows;
        WarpRow = 16 * warp;
        WarpToken = FirstToken + WarpRow;
        rowA = FirstToken / plan.BlockSize;
        // Unsplit, B is past the last block row (empty), so the walk loads nothing for it.
        var split = plan.BlockSize < Rows;
        rowB = split ? rowA + 1 : plan.BlockCount;
        inRowB = split && warp >= 2;
        rowInBlock = WarpToken - (inRowB ? rowB : rowA) * plan.BlockSize;
        TokenStep = (long)dims.Heads * features;
        HeadZero = dims.Index(n, 0, h, 0);
        shared = SharedMemory.GetDynamic<uint>();
        firstByte = CudaAsm.IsSupported ? 0 : EmulationBytes;
        KeyRows = Tile(0, Rows);
        ValueRows = Tile(1, Rows);
        Share = new StageShare(features, Threads);
    }

    /// <summary>This lane's row group within its warp's m16n8 fragments (rows g and g+8).</summary>
    public int G { get; }

    /// <summary>This lane within its row group (columns 2t, 2t+1).</summary>
    public int T { get; }

    /// <summary>The group's first token.</summary>
    public int FirstToken { get; }

    /// <summary>This warp's first row within the group.</summary>
    public int WarpRow { get; }

    /// <summary>This warp's first token.</summary>
    public int WarpToken { get; }

    /// <summary>Elements between consecutive tokens.</summary>
    public long TokenStep { get; }

    /// <summary>Element (sequence, token 0, head, feature 0).</summary>
    public long HeadZero { get; }

    /// <summary>The first staged tile of 64 rows: keys (of the row walks and, before its walk, of the column walk).</summary>
    public StagedRows KeyRows { get; }

    /// <summary>The second staged tile of 64 rows: values (queries and output gradients before a row walk).</summary>
    public StagedRows ValueRows { get; }

    /// <summary>This thread's share of each staging.</summary>
    public StageShare Share { get; }

    /// <summary>The grid, group and dynamic shared memory of a kernel staging <paramref name="stagedBytes"/> bytes.</summary>
    public static KernelConfig Config(Accelerator accelerator, in Dims dims, int stagedBytes)
    {
        var emulation = accelerator.AcceleratorType == AcceleratorType.Cuda ? 0 : EmulationBytes;
        return new KernelConfig(
            new Index3D((dims.Ctx + Rows - 1) / Rows, dims.Batch * dims.Heads, 1),
            new Index3D(Threads, 1, 1),
            SharedMemoryConfig.RequestDynamic<byte>(emulation + stagedBytes));
    }

    /// <summary>Bytes of a staged tile of <paramref name="rows"/> rows of <paramref name="features"/> features.</summary>
    public static int TileBytes(int features, int rows) => rows * 4 * StagedRows.RowWords(features);

    /// <summary>The group's dynamic shared memory, as words.</summary>
    public ArrayView<uint> Shared => shared;

    /// <summary>Where staged tiles start in <see cref="Shared"/>: past the CPU mma emulation's exchange, on CUDA at 0.</summary>
    public int FirstStagedByte => firstByte;

    /// <summary>Staged tile <paramref name="index"/> when the staged memory is cut into tiles of <paramref name="rows"/> rows.</summary>
    public StagedRows Tile(int index, int rows) => new(shared, firstByte + index * TileBytes(features, rows), features);

    /// <summary>Per-token terms of <paramref name="tokens"/> tokens staged from byte <paramref name="offset"/> of the staged memory.</summary>
    public StagedTerms Terms(int offset, int tokens) => new(shared, firstByte + offset, tokens);

    /// <summary>The walk over the group's steps of <paramref name="tokens"/> tokens.</summary>
    public BlockWalk Walk(int tokens) => BlockWalk.Start(plan, layoutHead, tokens, rowA, rowB, transposed);

    /// <summary>The walk along the group's one block row (blocks of 64 and 128), its table reads a block ahead.</summary>
    public RowWalk RowWalk() => Fused.RowWalk.Start(plan, layoutHead, rowA);

    /// <summary>The walk down the group's one block column (transposed, blocks of 64 and 128), its table reads ahead.</summary>
    public ColumnWalk ColumnWalk() => Fused.ColumnWalk.Start(plan, layoutHead, rowA);

    /// <summary>The step after <paramref name="walk"/>.</summary>
    public BlockWalk Next(in BlockWalk walk, int tokens) => walk.Next(plan, layoutHead, tokens, transposed);

    /// <summary>This warp's block at <paramref name="walk"/>'s step, or -1 where its block row does not have it.</summary>
    public int Block(in BlockWalk walk) => inRowB ? walk.BlockB : walk.BlockA;

    /// <summary>Whether <paramref name="block"/> (-1: none) has every element allowed; read before the step's mma so the load's latency hides behind them.</summary>
    public bool IsFull(int block) => block >= 0 && plan.BlockIsFull[block] != 0;

    /// <summary>Element (sequence, <paramref name="token"/>, head, feature 0).</summary>
    public long Token(int token) => HeadZero + token * TokenStep;

    /// <summary>
    /// Masks this warp's scores of the step where the block's element mask and the decoding rule remove them; only
    /// partial blocks (and blocks the rule reaches) pay for it, and a warp without the block (<paramref name="block"/> -1)
    /// masks everything. Transposed, the slab's rows are keys. The step starts at token <paramref name="token"/> on the
    /// walked side, <paramref name="tokenInBlock"/> into its block; <paramref name="isFull"/> is <see cref="IsFull"/> of the block.
    /// </summary>
    public void Mask<TSlab>(ref TSlab slab, in FlashProblem problem, int token, int tokenInBlock, int block, bool isFull)
        where TSlab : struct, IRowScores
    {
        if (block < 0)
        {
            slab.MaskAll();
            return;
        }

        MaskBlock(ref slab, problem, token, tokenInBlock, block, isFull);
    }

    /// <summary>
    /// <see cref="Mask"/> for a block the warp has (<paramref name="block"/> at least 0), as every step of
    /// <see cref="RowWalk"/> and <see cref="ColumnWalk"/> is: without the test for a missing block, the full path's
    /// scores need not meet an all-masked path's registers where the paths join.
    /// </summary>
    public void MaskBlock<TSlab>(ref TSlab slab, in FlashProblem problem, int token, int tokenInBlock, int block, bool isFull)
        where TSlab : struct, IRowScores
    {
        var keysEnd = transposed ? WarpToken + 16 : token + default(TSlab).Keys;
        if (!isFull || keysEnd > problem.AutoregressAtKey)
        {
            slab.Mask(new SlabSite(plan, (long)block * plan.WordsPerBlock, isFull, transposed, rowInBlock, tokenInBlock, WarpToken, token, problem.AutoregressAtKey), 0);
        }
    }
}
