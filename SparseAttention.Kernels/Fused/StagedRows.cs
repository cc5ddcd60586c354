using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// Up to 64 token rows of one head (q, k or v) staged in the group's dynamic shared memory, each row padded by 16 bytes
/// so that the eight row addresses of an <c>ldmatrix</c> fall in eight different groups of four banks. On CUDA the group
/// fills it with <c>cp.async</c> and the warps read fragments with <c>ldmatrix</c>; on the CPU accelerator plain copies
/// and word reads give the same fragments (map in docs/tensor-cores.md).
/// </summary>
internal readonly struct StagedRows
{
    private readonly ArrayView<uint> words;
    private readonly uint address;
    private readonly int firstWord;
    private readonly int rowWords;

    // Per lane, worked out once: where its ldmatrix row address lies from a fragment's first row and feature (the
    // fragment's own offset is then a constant the compiler folds in), and its (g, t) for the CPU twins.
    private readonly uint rowLane, columnLane, depthLane;
    private readonly int g, t;

    /// <summary>The rows from byte <paramref name="firstByte"/> of the dynamic shared memory <paramref name="dynamicWords"/>, <paramref name="features"/> elements each.</summary>
    public StagedRows(ArrayView<uint> dynamicWords, int firstByte, int features)
    {
        words = dynamicWords;
        rowWords = RowWords(features);
        firstWord = firstByte >> 2;
        var lane = TensorCore.Keep(Warp.LaneIdx);
        g = lane >> 2;
        t = lane & 3;
        address = CudaAsm.IsSupported ? TensorCore.SharedBase() + (uint)firstByte : 0u;

        // Row fragment: lane l gives row l % 16 at feature 8 (l / 16). Column fragments: matrix i = l / 8 is rows
        // 8 (i / 2) at feature 8 (i % 2). Depth fragments (transposed): rows 8 (i % 2) at feature 8 (i / 2).
        var rowBytes = 4 * rowWords;
        rowLane = address + (uint)((lane & 15) * rowBytes + 16 * (lane >> 4));
        columnLane = address + (uint)(((lane >> 4 << 3) + (lane & 7)) * rowBytes + 16 * ((lane >> 3) & 1));
        depthLane = address + (uint)(((((lane >> 3) & 1) << 3) + (lane & 7)) * rowBytes + 16 * (lane >> 4));
    }

    private StagedRows(in StagedRows rows, int bytes)
    {
        words = rows.words;
        rowWords = rows.rowWords;
        firstWord = rows.firstWord + (bytes >> 2);
        address = rows.address + (uint)bytes;
        rowLane = rows.rowLane + (uint)bytes;
        columnLane = rows.columnLane + (uint)bytes;
        depthLane = rows.depthLane + (uint)bytes;
        g = rows.g;
        t = rows.t;
    }

    /// <summary>The same rows <paramref name="bytes"/> further on (negative: back): the other buffer of a double-buffered tile.</summary>
    public StagedRows Shifted(int bytes) => new(this, bytes);

    /// <summary>Words per staged row of <paramref name="features"/> 16-bit elements: the row and 16 bytes of padding.</summary>
    public static int RowWords(int features) => (features >> 1) + 4;

    /// <summary>
    /// The group starts copying <paramref name="rows"/> token rows, row r from element <paramref name="first"/> + r *
    /// <paramref name="tokenStep"/> (also at <paramref name="globalAddress"/>, in bytes, on CUDA), each thread the quads
    /// <paramref name="share"/> assigns it; on CUDA they land at the next <see cref="AsyncCopy.WaitAll"/>, elsewhere at once.
    /// </summary>
    public void Stage(ArrayView<Quad> quads, long globalAddress, long first, long tokenStep, int rows, in StageShare share)
    {
        var element = first + share.Row * tokenStep + share.Element;
        var word = firstWord + share.Row * rowWords + share.Word;
        if (CudaAsm.IsSupported)
        {
            // TokenTiles checks that a tile takes at most AsyncCopy.MaxPasses passes.
            var source = globalAddress + 2 * element;
            var sourceStep = 2 * share.RowStep * tokenStep;
            var target = address + (uint)(4 * (word - firstWord));
            var targetStep = (uint)(4 * share.RowStep * rowWords);
            var passes = rows / share.RowStep;
            var partial = rows % share.RowStep != 0 && share.Row + passes * share.RowStep < rows;
            AsyncCopy.CopyPasses(passes, target, targetStep, source, sourceStep, partial);
            return;
        }

        var elementStep = share.RowStep * tokenStep;
        var wordStep = share.RowStep * rowWords;
        for (var row = share.Row; row < rows; row += share.RowStep)
        {
            words.Cast<Quad>()[word >> 2] = quads[element >> 3];
            element += elementStep;
            word += wordStep;
        }
    }

    /// <summary>The A fragment (16 x 16, row-major) of rows <paramref name="row"/>.. and features <paramref name="feature"/>..</summary>
    public void RowFragment(int row, int feature, out uint a0, out uint a1, out uint a2, out uint a3)
    {
        if (CudaAsm.IsSupported)
        {
            TensorCore.LoadMatrixWords(rowLane + Offset(row, feature), transposed: false, out a0, out a1, out a2, out a3);
            return;
        }

        a0 = Word(row + g, feature + 2 * t);
        a1 = Word(row + g + 8, feature + 2 * t);
        a2 = Word(row + g, feature + 8 + 2 * t);
        a3 = Word(row + g + 8, feature + 8 + 2 * t);
    }

    /// <summary>
    /// B fragments of rows transposed (keys as columns of Kᵀ): (<paramref name="b0"/>, <paramref name="b1"/>) for rows
    /// <paramref name="row"/>..+7 and (<paramref name="b2"/>, <paramref name="b3"/>) for rows +8..+15, over features <paramref name="feature"/>..+15.
    /// </summary>
    public void ColumnFragments(int row, int feature, out uint b0, out uint b1, out uint b2, out uint b3)
    {
        if (CudaAsm.IsSupported)
        {
            TensorCore.LoadMatrixWords(columnLane + Offset(row, feature), transposed: false, out b0, out b1, out b2, out b3);
            return;
        }

        b0 = Word(row + g, feature + 2 * t);
        b1 = Word(row + g, feature + 8 + 2 * t);
        b2 = Word(row + g + 8, feature + 2 * t);
        b3 = Word(row + g + 8, feature + 8 + 2 * t);
    }

    /// <summary>
    /// B fragments of the rows as they are (16 rows by features, as V in P . V): (<paramref name="b0"/>, <paramref name="b1"/>)
    /// for features <paramref name="feature"/>..+7 and (<paramref name="b2"/>, <paramref name="b3"/>) for +8..+15.
    /// </summary>
    public void DepthFragments(int row, int feature, out uint b0, out uint b1, out uint b2, out uint b3)
    {
        if (CudaAsm.IsSupported)
        {
            TensorCore.LoadMatrixWords(depthLane + Offset(row, feature), transposed: true, out b0, out b1, out b2, out b3);
            return;
        }

        b0 = Pair(row + 2 * t, feature + g);
        b1 = Pair(row + 8 + 2 * t, feature + g);
        b2 = Pair(row + 2 * t, feature + 8 + g);
        b3 = Pair(row + 8 + 2 * t, feature + 8 + g);
    }

    // Bytes from a lane's address at (0, 0) to the same lane's at (row, feature).
    private uint Offset(int row, int feature) => (uint)(4 * row * rowWords + 2 * feature);

    // Elements (row, feature) and (row, feature + 1), feature even.
    private uint Word(int row, int feature) => words[firstWord + row * rowWords + (feature >> 1)];

    // Elements (row, feature) and (row + 1, feature).
    private uint Pair(int row, int feature) => TensorCore.Pack(Half(row, feature), Half(row + 1, feature));

    private ushort Half(int row, int feature) => (ushort)(words[firstWord + row * rowWords + (feature >> 1)] >> (16 * (feature & 1)));
}

/// <summary>
/// Which 16-byte quads of a staged tile one thread copies: quad column <see cref="Element"/> / 8 of rows
/// <see cref="Row"/>, + <see cref="RowStep"/>, ...; worked out once per thread, so a step only adds.
/// </summary>
internal readonly struct StageShare
{
    /// <summary>The share of thread <c>Group.IdxX</c> of a group of <paramref name="threads"/> threads (a constant, so that a staging's passes are), for rows of <paramref name="features"/> 16-bit elements.</summary>
    public StageShare(int features, int threads)
    {
        var rowQuads = features >> 3;
        Row = TensorCore.Keep(Group.IdxX / rowQuads);
        var column = Group.IdxX - Row * rowQuads;
        RowStep = threads / rowQuads;
        Element = 8 * column;
        Word = 4 * column;
    }

    /// <summary>The thread's first row.</summary>
    public int Row { get; }

    /// <summary>Rows between the thread's quads.</summary>
    public int RowStep { get; }

    /// <summary>The quad's first element within its row.</summary>
    public int Element { get; }

    /// <summary>The quad's first word within its staged row.</summary>
    public int Word { get; }
}
