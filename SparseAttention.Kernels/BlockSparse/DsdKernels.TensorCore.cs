using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

/// <summary>Arguments of the fp16/bf16 tensor-core DSD kernel: weights and dense operand as 16-byte quads, the result as pairs.</summary>
public readonly struct DsdTensorCoreParams
{
    /// <summary>Block-sparse weights <c>[batch, heads, blocks, block, block]</c> as quads, 16-byte aligned.</summary>
    public ArrayView<Quad> WeightQuads { get; init; }

    /// <summary>Dense operand <c>[batch, ctx, heads * headDim]</c> as quads, 16-byte aligned.</summary>
    public ArrayView<Quad> DenseQuads { get; init; }

    /// <summary>Dense result, same shape as the dense operand, as packed pairs; every element is written.</summary>
    public ArrayView<uint> OutputPairs { get; init; }

    /// <summary>Problem sizes.</summary>
    public Dims Dims { get; init; }

    /// <summary>The plan's tables.</summary>
    public PlanTables Plan { get; init; }

    /// <summary>1 for the transposed op (walk columns, use W transposed), 0 for the plain one.</summary>
    public int Transposed { get; init; }
}

/// <summary>DSD v3: tensor cores for fp16 and bf16, weight and dense tiles staged through shared memory.</summary>
public static partial class DsdKernels
{
    /// <summary>The plain or transposed block-sparse times dense product with mma.sync (plain C# twin on the CPU).</summary>
    public static void LaunchTensorCore<TElement>(Accelerator accelerator, in DsdTensorCoreParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        SharedTiles.RequireAligned(p.WeightQuads, nameof(p.WeightQuads));
        SharedTiles.RequireAligned(p.DenseQuads, nameof(p.DenseQuads));
        var edge = SharedTiles.Edge(p.Plan.BlockSize);
        var words = edge * (SharedTiles.RowWords(edge) + SharedTiles.RowWords(p.Dims.HeadDim));
        var threads = edge / 16 * (p.Dims.HeadDim / 16) * 32;
        var config = new KernelConfig(new Index2D(p.Dims.Ctx / edge, p.Dims.Batch * p.Dims.Heads), new Index2D(threads, 1), SharedTiles.Words(words));
        KernelLoader.Get<DsdTensorCoreParams>(accelerator, TensorCoreKernel<TElement>)(accelerator.DefaultStream, config, p);
    }

    // One group per edge output rows of a (sequence, head), one warp per 16 rows by 16 features of them. For each block
    // of the LUT row (plain) or column (transposed) and each edge-deep slice of it, the group stages the weight tile and
    // the dense rows it multiplies with 16-byte loads; the warps read their fragments from shared memory, transposing
    // 8x8 matrices (ldmatrix .trans) where the fragment runs across staged rows.
    internal static void TensorCoreKernel<TElement>(DsdTensorCoreParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var element = default(TElement);
        var dims = p.Dims;
        var plan = p.Plan;
        int bs = plan.BlockSize, edge = SharedTiles.Edge(bs);
        var transposed = p.Transposed != 0;
        int n = TensorCore.Keep(Grid.IdxY / dims.Heads), h = TensorCore.Keep(Grid.IdxY - n * dims.Heads), lh = plan.LayoutHead(h);
        int firstRow = Grid.IdxX * edge, outBlock = firstRow / bs, rowInBlock = TensorCore.Keep(firstRow - outBlock * bs);
        var offsets = transposed ? plan.ColumnOffsets : plan.RowOffsets;
        var start = offsets[lh * (plan.BlockCount + 1) + outBlock];
        var end = offsets[lh * (plan.BlockCount + 1) + outBlock + 1];

        var words = SharedMemory.GetDynamic<uint>();
        var halves = words.Cast<ushort>();
        var quads = words.Cast<Quad>();
        int weightStride = SharedTiles.RowWords(edge), denseStride = SharedTiles.RowWords(dims.HeadDim);
        var dense = edge * weightStride;
        long tokenQuads = (long)dims.Heads * dims.HeadDim >> 3;

        // Shifts and masks, not / and %: ILGPU's PTX divides by a constant with a full integer division.
        int warp = Group.IdxX >> 5, lane = Group.IdxX & 31, g = lane >> 2, t = lane & 3;
        var featureTiles = dims.HeadDim >> 4;
        var featureTile = TensorCore.Keep(warp % featureTiles);
        int rows = (warp - featureTile) / featureTiles * 16, features = featureTile * 16;

        // Accumulators of the two 16x8 tiles (features +0..7 and +8..15): (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1).
        Ref<float> c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u, b0 = 0u, b1 = 0u;
        Output<uint> m0 = default, m1 = default, m2 = default, m3 = default;

        // ldmatrix row addresses at k = 0, each advancing 16 staged rows or elements per k-step. A plain: W row
        // rows + l % 16 at k + 8 (l / 16). A transposed (.trans): staged row k + 8 (l / 16) + l % 8 at m = rows + 8 ((l / 8) % 2).
        // B (.trans): dense row k + 8 ((l / 8) % 2) + l % 8 at feature features + 8 (l / 16).
        var sharedBase = CudaAsm.IsSupported ? TensorCore.SharedBase() : 0u;

        // Staging plan, the same for every slice. The group has edge * headDim / 8 threads: thread i moves quad i of the
        // dense rows (headDim / 8 per row), and quad i of the weight tile (edge / 8 per row) plus, where the head dim is
        // smaller than the edge, the quads headDim, 2 headDim.. rows further (passes) while inside the tile; where it is
        // larger, only the first edge * edge / 8 threads move a weight quad. Offsets only, computed once: no walk, no division in the loop.
        int denseQuadRow = TensorCore.Keep(Group.IdxX / (dims.HeadDim >> 3)), weightQuadRow = TensorCore.Keep(Group.IdxX / (edge >> 3));
        long denseOffset = denseQuadRow * tokenQuads + (Group.IdxX - denseQuadRow * (dims.HeadDim >> 3));
        var denseTarget = ((dense + denseQuadRow * denseStride) >> 2) + Group.IdxX - denseQuadRow * (dims.HeadDim >> 3);
        long weightOffset = weightQuadRow * (bs >> 3) + (Group.IdxX - weightQuadRow * (edge >> 3));
        var weightTarget = ((weightQuadRow * weightStride) >> 2) + Group.IdxX - weightQuadRow * (edge >> 3);
        var weightPasses = (edge + dims.HeadDim - 1) / dims.HeadDim;
        var weightAddress = transposed
            ? sharedBase + (uint)(4 * ((lane >> 4 << 3) + (lane & 7)) * weightStride + 2 * rows + 16 * ((lane >> 3) & 1))
            : sharedBase + (uint)(4 * (rows + (lane & 15)) * weightStride + 16 * (lane >> 4));
        var weightStep = (uint)(transposed ? 64 * weightStride : 32);
        var denseAddress = sharedBase + (uint)(4 * (dense + ((((lane >> 3) & 1) << 3) + (lane & 7)) * denseStride) + 2 * features + 16 * (lane >> 4));

        // The next slice's dense quad and first weight quad load into registers while the warps compute this slice.
        var source = new SliceSource(p, n, h, rowInBlock, transposed, denseOffset, weightOffset, weightQuadRow < edge);
        var next = start < end ? source.Load(start, 0) : default;

        for (var entry = start; entry < end; entry++)
        {
            for (var slice = 0; slice < bs; slice += edge)
            {
                Group.Barrier();
                if (weightQuadRow < edge)
                {
                    quads[weightTarget] = next.Weight;
                }

                for (var pass = 1; pass < weightPasses; pass++)
                {
                    if (weightQuadRow + pass * dims.HeadDim < edge)
                    {
                        quads[weightTarget + ((pass * dims.HeadDim * weightStride) >> 2)] = p.WeightQuads[next.WeightSource + weightOffset + pass * dims.HeadDim * (bs >> 3)];
                    }
                }

                quads[denseTarget] = next.Dense;
                Group.Barrier();
                int nextEntry = slice + edge < bs ? entry : entry + 1, nextSlice = slice + edge < bs ? slice + edge : 0;
                if (nextEntry < end)
                {
                    next = source.Load(nextEntry, nextSlice);
                }

                for (var k = 0; k < edge; k += 16)
                {
                    if (CudaAsm.IsSupported)
                    {
                        var weightAt = weightAddress + (uint)(k >> 4) * weightStep;
                        TensorCore.LoadMatrixWords(weightAt, transposed, out var w0, out var w1, out var w2, out var w3);
                        a0 = w0;
                        a1 = w1;
                        a2 = w2;
                        a3 = w3;
                        TensorCore.LoadMatricesTransposed(denseAddress + (uint)(4 * k * denseStride), ref m0, ref m1, ref m2, ref m3);
                        b0 = m0.Value;
                        b1 = m1.Value;
                        element.Mma(ref c00, ref c01, ref c02, ref c03, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                        b0 = m2.Value;
                        b1 = m3.Value;
                        element.Mma(ref c10, ref c11, ref c12, ref c13, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
                    }
                    else
                    {
                        // Element indices: A row g at this k and its step along k; dense row k, feature 2t, and the row step.
                        long weightRowElements = 2 * weightStride, denseRow = 2 * denseStride;
                        long aRow = transposed ? k * weightRowElements + rows + g : (rows + g) * weightRowElements + k;
                        long aStep = transposed ? weightRowElements : 1, aEight = transposed ? 8 : 8 * weightRowElements;
                        long column = 2 * dense + k * denseRow + features + 2 * t;
                        c00.Value += TensorCore.Dot16(element, halves, aRow, aStep, halves, column, denseRow);
                        c01.Value += TensorCore.Dot16(element, halves, aRow, aStep, halves, column + 1, denseRow);
                        c02.Value += TensorCore.Dot16(element, halves, aRow + aEight, aStep, halves, column, denseRow);
                        c03.Value += TensorCore.Dot16(element, halves, aRow + aEight, aStep, halves, column + 1, denseRow);
                        c10.Value += TensorCore.Dot16(element, halves, aRow, aStep, halves, column + 8, denseRow);
                        c11.Value += TensorCore.Dot16(element, halves, aRow, aStep, halves, column + 9, denseRow);
                        c12.Value += TensorCore.Dot16(element, halves, aRow + aEight, aStep, halves, column + 8, denseRow);
                        c13.Value += TensorCore.Dot16(element, halves, aRow + aEight, aStep, halves, column + 9, denseRow);
                    }
                }
            }
        }

        var output = dims.Index(n, firstRow + rows + g, h, features + 2 * t);
        var eightRows = 8L * dims.Heads * dims.HeadDim;
        p.OutputPairs[output >> 1] = element.Pack(c00.Value, c01.Value);
        p.OutputPairs[(output + eightRows) >> 1] = element.Pack(c02.Value, c03.Value);
        p.OutputPairs[(output + 8) >> 1] = element.Pack(c10.Value, c11.Value);
        p.OutputPairs[(output + eightRows + 8) >> 1] = element.Pack(c12.Value, c13.Value);
    }

    /// <summary>Where a thread's quads of a slice of a LUT entry's block come from: the weight tile and the dense rows it multiplies.</summary>
    private readonly struct SliceSource
    {
        private readonly DsdTensorCoreParams p;
        private readonly int n, h, rowInBlock;
        private readonly bool transposed, movesWeight;
        private readonly long denseOffset, weightOffset;

        public SliceSource(in DsdTensorCoreParams p, int n, int h, int rowInBlock, bool transposed, long denseOffset, long weightOffset, bool movesWeight)
        {
            this.p = p;
            this.n = n;
            this.h = h;
            this.rowInBlock = rowInBlock;
            this.transposed = transposed;
            this.denseOffset = denseOffset;
            this.weightOffset = weightOffset;
            this.movesWeight = movesWeight;
        }

        // One read of the LUT: the staged weight tile starts at W rows rowInBlock.., columns slice.. (plain), or W rows
        // slice.., columns rowInBlock.. (transposed); the dense rows at token slice.. of the block paired with the entry's.
        public SliceQuads Load(int entry, int slice)
        {
            var plan = p.Plan;
            var bs = plan.BlockSize;
            var block = transposed ? plan.ColumnBlocks[entry] : plan.RowBlocks[entry];
            var planBlock = plan.LayoutHead(h) * plan.BlocksPerHead + block;
            var other = transposed ? plan.BlockRows[planBlock] : plan.BlockColumns[planBlock];
            var blockBase = (((long)n * p.Dims.Heads + h) * plan.BlocksPerHead + block) * bs * bs;
            long row = transposed ? slice : rowInBlock, column = transposed ? rowInBlock : slice;
            var weightSource = (blockBase + row * bs + column) >> 3;
            var dense = p.DenseQuads[(p.Dims.Index(n, other * bs + slice, h, 0) >> 3) + denseOffset];
            return new SliceQuads(weightSource, movesWeight ? p.WeightQuads[weightSource + weightOffset] : default, dense);
        }
    }

    /// <summary>A thread's first weight quad and dense quad of a slice, and where the slice's weight tile starts (for later passes).</summary>
    private readonly record struct SliceQuads(long WeightSource, Quad Weight, Quad Dense);
}
