using SparseAttention.Layouts;

namespace SparseAttention.Planning;

/// <summary>
/// A layout compiled into the lookup tables the kernels walk, and the per-block element bit masks. Immutable.
/// </summary>
/// <remarks>
/// Encoding, for one layout head <c>lh</c> (all arrays hold every layout head back to back):
/// <list type="bullet">
/// <item><c>BlockRows[lh * nnz + b]</c>, <c>BlockColumns[lh * nnz + b]</c>: block <c>b</c>'s (i, j), blocks numbered row-major.</item>
/// <item><c>RowOffsets[lh * (nb + 1) + i]</c> .. <c>[.. + i + 1]</c>: the range of <c>RowBlocks</c> holding block row i's
/// block numbers, ordered by column (what the weight-value op sums over).</item>
/// <item><c>ColumnOffsets</c> / <c>ColumnBlocks</c>: the same per block column, ordered by row (the transposed op).</item>
/// <item><c>Masks[(lh * nnz + b) * WordsPerBlock + (r * block + c) / 32]</c> bit <c>(r * block + c) % 32</c>: element (r, c) allowed.</item>
/// <item><c>BlockIsFull[lh * nnz + b]</c> is 1 when every bit of the block is set, so kernels may skip the mask.</item>
/// </list>
/// Worked example, nb = 3, one head, layout rows <c>{0}</c>, <c>{}</c>, <c>{0, 2}</c> (block row 1 empty, column 1 empty):
/// blocks are b0 = (0,0), b1 = (2,0), b2 = (2,2); <c>RowOffsets = [0, 1, 1, 3]</c>, <c>RowBlocks = [0, 1, 2]</c>;
/// <c>ColumnOffsets = [0, 2, 2, 3]</c>, <c>ColumnBlocks = [0, 1, 2]</c>.
/// </remarks>
public sealed partial class BlockSparsePlan
{
    private readonly int[] blockRows;
    private readonly int[] blockColumns;
    private readonly int[] rowOffsets;
    private readonly int[] rowBlocks;
    private readonly int[] columnOffsets;
    private readonly int[] columnBlocks;
    private readonly uint[] masks;
    private readonly int[] blockIsFull;

    private BlockSparsePlan(BlockLayout layout)
    {
        BlockSize = layout.BlockSize;
        BlockCount = layout.BlockCount;
        Heads = layout.Heads;
        LayoutHeads = layout.LayoutHeads;
        BlocksPerHead = layout.BlocksPerHead;
        WordsPerBlock = BlockSize * BlockSize / 32;
        Name = layout.Name;

        int nb = BlockCount, nnz = BlocksPerHead;
        blockRows = new int[LayoutHeads * nnz];
        blockColumns = new int[LayoutHeads * nnz];
        rowOffsets = new int[LayoutHeads * (nb + 1)];
        rowBlocks = new int[LayoutHeads * nnz];
        columnOffsets = new int[LayoutHeads * (nb + 1)];
        columnBlocks = new int[LayoutHeads * nnz];
        masks = new uint[LayoutHeads * nnz * WordsPerBlock];
        blockIsFull = new int[LayoutHeads * nnz];
        BlockRows = Array.AsReadOnly(blockRows);
        BlockColumns = Array.AsReadOnly(blockColumns);
        RowOffsets = Array.AsReadOnly(rowOffsets);
        RowBlocks = Array.AsReadOnly(rowBlocks);
        ColumnOffsets = Array.AsReadOnly(columnOffsets);
        ColumnBlocks = Array.AsReadOnly(columnBlocks);
        Masks = Array.AsReadOnly(masks);
        BlockIsFull = Array.AsReadOnly(blockIsFull);

        // Heads fill disjoint parts of the tables; a per-head layout at long ctx evaluates billions of mask elements.
        Parallel.For(0, LayoutHeads, lh => FillHead(layout, lh));
    }

    /// <summary>Block edge in tokens.</summary>
    public int BlockSize { get; }

    /// <summary>Block rows (and columns) of the layout.</summary>
    public int BlockCount { get; }

    /// <summary>Sequence length.</summary>
    public int Ctx => BlockCount * BlockSize;

    /// <summary>The autoregressAtKey the kernels take for <paramref name="autoregressAtKey"/>: ctx when there is none (the rule then removes nothing).</summary>
    internal int KernelAutoregressAtKey(int? autoregressAtKey) => autoregressAtKey ?? Ctx;

    /// <summary>Heads the plan serves.</summary>
    public int Heads { get; }

    /// <summary>1 when heads share the tables, else <see cref="Heads"/>.</summary>
    public int LayoutHeads { get; }

    /// <summary>Enabled blocks per head (<c>nnz</c>).</summary>
    public int BlocksPerHead { get; }

    /// <summary>32-bit words of element mask per block: <c>block * block / 32</c>.</summary>
    public int WordsPerBlock { get; }

    /// <summary>The layout's name, for tables and logs.</summary>
    public string Name { get; }

    /// <summary>Block row of each block, row-major numbering, per layout head.</summary>
    public IReadOnlyList<int> BlockRows { get; }

    /// <summary>Block column of each block, per layout head.</summary>
    public IReadOnlyList<int> BlockColumns { get; }

    /// <summary>CSR offsets into <see cref="RowBlocks"/>, <c>nb + 1</c> per layout head, absolute.</summary>
    public IReadOnlyList<int> RowOffsets { get; }

    /// <summary>Block numbers of each block row, ordered by column.</summary>
    public IReadOnlyList<int> RowBlocks { get; }

    /// <summary>CSR offsets into <see cref="ColumnBlocks"/>, <c>nb + 1</c> per layout head, absolute.</summary>
    public IReadOnlyList<int> ColumnOffsets { get; }

    /// <summary>Block numbers of each block column, ordered by row.</summary>
    public IReadOnlyList<int> ColumnBlocks { get; }

    /// <summary>Element bit masks, <see cref="WordsPerBlock"/> words per block.</summary>
    public IReadOnlyList<uint> Masks { get; }

    /// <summary>1 where a block's mask is all ones.</summary>
    public IReadOnlyList<int> BlockIsFull { get; }

    /// <summary>The integer tables in the order the device plan uploads them, and the mask words: no copies.</summary>
    internal (int[][] Tables, uint[] Masks) ForUpload() => ([blockRows, blockColumns, rowOffsets, rowBlocks, columnOffsets, columnBlocks, blockIsFull], masks);

    /// <summary>Bytes the plan's tables take on a device.</summary>
    public long SizeInBytes => 4L * (blockRows.Length + blockColumns.Length + rowOffsets.Length + rowBlocks.Length
        + columnOffsets.Length + columnBlocks.Length + masks.Length + blockIsFull.Length);

    /// <summary>Whether element (r, c) of block <paramref name="block"/> of <paramref name="layoutHead"/> is allowed.</summary>
    public bool IsElementAllowed(int layoutHead, int block, int r, int c)
    {
        var bit = r * BlockSize + c;
        return (masks[(layoutHead * BlocksPerHead + block) * WordsPerBlock + (bit >> 5)] & (1u << (bit & 31))) != 0;
    }

    private void FillHead(BlockLayout layout, int lh)
    {
        int nb = BlockCount, nnz = BlocksPerHead, bs = BlockSize, baseBlock = lh * nnz;
        var b = 0;
        var rowCounts = new int[nb];
        var columnCounts = new int[nb];
        for (var i = 0; i < nb; i++)
        {
            for (var j = 0; j < nb; j++)
            {
                if (!layout.IsBlockEnabled(lh, i, j))
                {
                    continue;
                }

                blockRows[baseBlock + b] = i;
                blockColumns[baseBlock + b] = j;
                var full = true;
                var maskBase = (baseBlock + b) * WordsPerBlock;
                for (var r = 0; r < bs; r++)
                {
                    for (var c = 0; c < bs; c++)
                    {
                        if (layout.IsElementAllowed(lh, i * bs + r, j * bs + c))
                        {
                            var bit = r * bs + c;
                            masks[maskBase + (bit >> 5)] |= 1u << (bit & 31);
                        }
                        else
                        {
                            full = false;
                        }
                    }
                }

                blockIsFull[baseBlock + b] = full ? 1 : 0;
                rowCounts[i]++;
                columnCounts[j]++;
                b++;
            }
        }

        FillCsr(lh, rowCounts, rowOffsets, rowBlocks, b => blockRows[baseBlock + b]);
        FillCsr(lh, columnCounts, columnOffsets, columnBlocks, b => blockColumns[baseBlock + b]);
    }

    // Blocks are visited in row-major order, so bucketing by row keeps column order and bucketing by column keeps row order.
    private void FillCsr(int lh, int[] counts, int[] offsets, int[] entries, Func<int, int> keyOf)
    {
        int nb = BlockCount, nnz = BlocksPerHead;
        var offsetBase = lh * (nb + 1);
        offsets[offsetBase] = lh * nnz;
        for (var i = 0; i < nb; i++)
        {
            offsets[offsetBase + i + 1] = offsets[offsetBase + i] + counts[i];
        }

        var cursor = offsets.AsSpan(offsetBase, nb).ToArray();
        for (var b = 0; b < nnz; b++)
        {
            entries[cursor[keyOf(b)]++] = b;
        }
    }
}
