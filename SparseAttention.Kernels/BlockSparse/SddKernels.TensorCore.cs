using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

/// <summary>Arguments of the fp16/bf16 tensor-core SDD kernel: its operands and result as 16-byte quads.</summary>
public readonly struct SddTensorCoreParams
{
    /// <summary>Left operand <c>[batch, ctx, heads * headDim]</c> (queries, or output gradients) as quads, 16-byte aligned.</summary>
    public ArrayView<Quad> LeftQuads { get; init; }

    /// <summary>Right operand, same shape (keys, or values), as quads, 16-byte aligned.</summary>
    public ArrayView<Quad> RightQuads { get; init; }

    /// <summary>Block-sparse result <c>[batch, heads, blocks, block, block]</c> as quads, 16-byte aligned.</summary>
    public ArrayView<Quad> OutputQuads { get; init; }

    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }
}

/// <summary>What the tensor-core SDD kernel is launched with: the caller's arguments and the launcher's run length.</summary>
public readonly struct SddTensorCoreLaunch
{
    /// <summary>The caller's arguments.</summary>
    public SddTensorCoreParams Params { get; init; }

    /// <summary>Consecutive tiles each group computes (about one wave of groups).</summary>
    public int TilesPerGroup { get; init; }
}

/// <summary>SDD v3: tensor cores for fp16 and bf16, operands and result staged through shared memory.</summary>
public static partial class SddKernels
{
    // Groups of the staged kernel one multiprocessor holds (27.6 KB of shared memory each at head dim 64).
    private const int GroupsPerMultiprocessor = 8;

    /// <summary>Computes every enabled block of <c>Left . Right^T</c> with mma.sync (plain C# twin on the CPU accelerator).</summary>
    public static void LaunchTensorCore<TElement>(Accelerator accelerator, in SddTensorCoreParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        SharedTiles.RequireAligned(p.LeftQuads, nameof(p.LeftQuads));
        SharedTiles.RequireAligned(p.RightQuads, nameof(p.RightQuads));
        SharedTiles.RequireAligned(p.OutputQuads, nameof(p.OutputQuads));
        var edge = SharedTiles.Edge(p.Plan.BlockSize);
        var tilesPerBlock = p.Plan.BlockSize / edge;
        var tiles = p.Plan.BlocksPerHead * tilesPerBlock * tilesPerBlock;
        if (tiles == 0)
        {
            return;
        }

        // About one wave of groups, each taking a run of consecutive tiles.
        var heads = (long)p.Dims.Batch * p.Dims.Heads;
        var tilesPerGroup = (int)Math.Max(1, tiles * heads / (accelerator.NumMultiprocessors * GroupsPerMultiprocessor));
        var words = edge * (2 * SharedTiles.RowWords(p.Dims.HeadDim) + SharedTiles.RowWords(edge));
        var groups = new Index3D((tiles + tilesPerGroup - 1) / tilesPerGroup, p.Dims.Heads, p.Dims.Batch);
        var config = new KernelConfig(groups, new Index3D(edge / 16 * 32, 1, 1), SharedTiles.Words(words));
        KernelLoader.Get<SddTensorCoreLaunch>(accelerator, TensorCoreKernel<TElement>)(accelerator.DefaultStream, config, new SddTensorCoreLaunch { Params = p, TilesPerGroup = tilesPerGroup });
    }

    // A group takes a run of consecutive edge x edge tiles of one (sequence, head), in block order, so runs stay in a
    // block row: the query rows are staged (16-byte loads) only when the row changes, the key rows for every tile. Each
    // warp computes 16 query rows of the tile against every staged key, and the tile leaves through shared memory as
    // 16-byte stores (a 16x16 warp tile stored directly is 16-byte pieces of 32-byte sectors).
    internal static void TensorCoreKernel<TElement>(SddTensorCoreLaunch launch)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var p = launch.Params;
        var element = default(TElement);
        var dims = p.Dims;
        var plan = p.Plan;
        int bs = plan.BlockSize, edge = SharedTiles.Edge(bs), tilesPerBlock = bs / edge;
        int n = Grid.IdxZ, h = Grid.IdxY, lh = plan.LayoutHead(h);

        // Blocks of 128 hold 2 x 2 tiles, smaller ones one: tile shift 1 or 0.
        var tileShift = tilesPerBlock >> 1;
        var firstTile = Grid.IdxX * launch.TilesPerGroup;
        var lastTile = XMath.Min(firstTile + launch.TilesPerGroup, plan.BlocksPerHead << (2 * tileShift));

        var words = SharedMemory.GetDynamic<uint>();
        var halves = words.Cast<ushort>();
        var quads = words.Cast<Quad>();
        int operandStride = SharedTiles.RowWords(dims.HeadDim), outputStride = SharedTiles.RowWords(edge);
        int left = 0, right = edge * operandStride, output = 2 * edge * operandStride;
        long tokenQuads = (long)dims.Heads * dims.HeadDim >> 3;
        QuadWalk operandWalk = new(dims.HeadDim >> 3), outputWalk = new(edge >> 3);

        // Shifts and masks, not / and %: ILGPU's PTX divides by a constant with a full integer division in the loops.
        int warpRow = Group.IdxX >> 5 << 4, lane = Group.IdxX & 31, g = lane >> 2, t = lane & 3;
        var rowWord = left + (warpRow + g) * operandStride + t;

        // ldmatrix row addresses: A (16 query rows by 16 k) takes lane l's row l % 16 at k + 8 (l / 16); B, two 16x8
        // tiles given as key rows, takes key 8 (l / 16) + l % 8 at k + 8 ((l / 8) % 2). Both advance 32 bytes per k-step.
        var sharedBase = CudaAsm.IsSupported ? TensorCore.SharedBase() : 0u;
        var queryAddress = sharedBase + (uint)(4 * (left + (warpRow + (lane & 15)) * operandStride) + 16 * (lane >> 4));
        var keyAddress = sharedBase + (uint)(4 * (right + ((lane >> 4 << 3) + (lane & 7)) * operandStride) + 16 * ((lane >> 3) & 1));
        var kWords = dims.HeadDim >> 1;
        var stagedRow = -1;

        // The next tile's keys are loaded into registers (one batch: all of them up to head dim 64) while the warps
        // compute this one, so their load latency is hidden behind the mma work.
        var keyQuad = KeyQuad(p, n, h, firstTile, tileShift, tilesPerBlock, edge);
        var keys = new QuadBatch(p.RightQuads, keyQuad, tokenQuads, edge, operandWalk);
        for (var tile = firstTile; tile < lastTile; tile++)
        {
            var block = tile >> (2 * tileShift);
            var tileInBlock = tile & ((1 << (2 * tileShift)) - 1);
            int tileRow = (tileInBlock >> tileShift) * edge, tileColumn = (tileInBlock & (tilesPerBlock - 1)) * edge;
            var leftRow = plan.BlockRows[lh * plan.BlocksPerHead + block] * bs + tileRow;

            // The previous tile's warps are done with the staged keys (and queries) before they are replaced.
            Group.Barrier();
            if (leftRow != stagedRow)
            {
                SharedTiles.Stage(p.LeftQuads, dims.Index(n, leftRow, h, 0) >> 3, tokenQuads, edge, operandWalk, quads, left, operandStride);
                stagedRow = leftRow;
            }

            keys.Store(quads, right, operandStride);
            SharedTiles.Stage(p.RightQuads, keyQuad, tokenQuads, edge, keys.Rest, quads, right, operandStride);
            Group.Barrier();
            keyQuad = KeyQuad(p, n, h, XMath.Min(tile + 1, lastTile - 1), tileShift, tilesPerBlock, edge);
            keys = new QuadBatch(p.RightQuads, keyQuad, tokenQuads, edge, operandWalk);
            for (var column = 0; column < edge; column += 16)
            {
                // Accumulators of the two 16x8 tiles (keys +0..7 and +8..15): (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1).
                Ref<float> c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
                Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u, b0 = 0u, b1 = 0u;
                Output<uint> m0 = default, m1 = default, m2 = default, m3 = default;
                var keyWord = right + (column + g) * operandStride + t;
                for (var k = 0; k < kWords; k += 8)
                {
                    if (CudaAsm.IsSupported)
                    {
                        TensorCore.LoadMatrices(queryAddress + (uint)(4 * k), ref m0, ref m1, ref m2, ref m3);
                        a0 = m0.Value;
                        a1 = m1.Value;
                        a2 = m2.Value;
                        a3 = m3.Value;
                        TensorCore.LoadMatrices(keyAddress + (uint)(4 * (column * operandStride + k)), ref m0, ref m1, ref m2, ref m3);
                        b0 = m0.Value;
                        b1 = m1.Value;
                        element.Mma(ref c00, ref c01, ref c02, ref c03, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                        b0 = m2.Value;
                        b1 = m3.Value;
                        element.Mma(ref c10, ref c11, ref c12, ref c13, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                    }
                    else
                    {
                        // Element indices of query row g and key 2t at this k; rows are 2 * stride elements apart.
                        long query = 2 * (rowWord - t + k), key = 2 * (keyWord - t + k - g * operandStride + 2 * t * operandStride), row = 2 * operandStride;
                        c00.Value += TensorCore.Dot16(element, halves, query, 1, halves, key, 1);
                        c01.Value += TensorCore.Dot16(element, halves, query, 1, halves, key + row, 1);
                        c02.Value += TensorCore.Dot16(element, halves, query + 8 * row, 1, halves, key, 1);
                        c03.Value += TensorCore.Dot16(element, halves, query + 8 * row, 1, halves, key + row, 1);
                        c10.Value += TensorCore.Dot16(element, halves, query, 1, halves, key + 8 * row, 1);
                        c11.Value += TensorCore.Dot16(element, halves, query, 1, halves, key + 9 * row, 1);
                        c12.Value += TensorCore.Dot16(element, halves, query + 8 * row, 1, halves, key + 8 * row, 1);
                        c13.Value += TensorCore.Dot16(element, halves, query + 8 * row, 1, halves, key + 9 * row, 1);
                    }
                }

                var outputWord = output + (warpRow + g) * outputStride + (column >> 1) + t;
                words[outputWord] = element.Pack(c00.Value, c01.Value);
                words[outputWord + 8 * outputStride] = element.Pack(c02.Value, c03.Value);
                words[outputWord + 4] = element.Pack(c10.Value, c11.Value);
                words[outputWord + 8 * outputStride + 4] = element.Pack(c12.Value, c13.Value);
            }

            Group.Barrier();
            var blockBase = (((long)n * dims.Heads + h) * plan.BlocksPerHead + block) * bs * bs;
            SharedTiles.Unstage(quads, output, outputStride, edge, outputWalk, p.OutputQuads, (blockBase + (long)tileRow * bs + tileColumn) >> 3, bs >> 3);
        }
    }

    // Quad index of the first key row of tile number tile (tiles in block order, 2^tileShift per block edge).
    private static long KeyQuad(in SddTensorCoreParams p, int n, int h, int tile, int tileShift, int tilesPerBlock, int edge)
    {
        var plan = p.Plan;
        var block = tile >> (2 * tileShift);
        var tileColumn = (tile & (tilesPerBlock - 1)) * edge;
        var rightRow = plan.BlockColumns[plan.LayoutHead(h) * plan.BlocksPerHead + block] * plan.BlockSize + tileColumn;
        return p.Dims.Index(n, rightRow, h, 0) >> 3;
    }
}
