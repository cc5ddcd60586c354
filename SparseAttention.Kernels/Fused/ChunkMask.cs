using ILGPU;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// Which elements of a 16x16 score tile a lane may keep (bit order of <see cref="ScoreTile"/>): the block's element bit
/// mask and <c>autoregress_at_key</c>, for tiles of queries by keys (forward, dQ) or keys by queries (dK, dV).
/// </summary>
internal static class ChunkMask
{
    /// <summary>
    /// Queries by keys: rows are queries <paramref name="rowInBlock"/> (+g, +g+8) of the block, columns keys
    /// <paramref name="keyInBlock"/>.. (+2t, +2t+1, +8+2t, +9+2t); <paramref name="query"/> and <paramref name="key"/> are the tile's first tokens.
    /// </summary>
    public static int ForQueries(in PlanTables plan, long maskBase, bool isFull, int rowInBlock, int keyInBlock, int query, int key, int autoregressAtKey)
    {
        var lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        int low = RowBits(plan, maskBase, isFull, rowInBlock + g, keyInBlock, t), high = RowBits(plan, maskBase, isFull, rowInBlock + g + 8, keyInBlock, t);
        return WithoutFuture(low | (high << 4), query, key, autoregressAtKey, keysAreRows: false);
    }

    /// <summary>
    /// Keys by queries: rows are keys <paramref name="keyInBlock"/> (+g, +g+8), columns queries <paramref name="rowInBlock"/>..
    /// (+2t, +2t+1, +8+2t, +9+2t); <paramref name="key"/> and <paramref name="query"/> are the tile's first tokens.
    /// </summary>
    public static int ForKeys(in PlanTables plan, long maskBase, bool isFull, int keyInBlock, int rowInBlock, int key, int query, int autoregressAtKey)
    {
        var lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        var bits = 0;
        for (var i = 0; i < 4; i++)
        {
            var column = Column(i, t);
            // Bit 0 is key g and bit 8 key g+8, as the reader below takes them (a full block allows both).
            var word = 0x101u;
            if (!isFull)
            {
                // Keys g and g+8 of one query row lie in one word: the 16 keys start at a multiple of 16.
                var bit = (rowInBlock + column) * plan.BlockSize + keyInBlock + g;
                word = plan.Masks[maskBase + (bit >> 5)] >> (bit & 31);
            }

            bits |= (int)(word & 1u) << i;
            bits |= (int)((word >> 8) & 1u) << (i + 4);
        }

        return WithoutFuture(bits, key, query, autoregressAtKey, keysAreRows: true);
    }

    // Clears the elements autoregress_at_key removes: keys at or after it that lie after their query. Rows start at
    // token firstRow (+g, +g+8), columns at firstColumn (+2t, +2t+1, +8+2t, +9+2t); keysAreRows says which side is the key.
    private static int WithoutFuture(int bits, int firstRow, int firstColumn, int autoregressAtKey, bool keysAreRows)
    {
        var lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        for (var i = 0; i < 8; i++)
        {
            int row = firstRow + g + (i >> 2) * 8, column = firstColumn + Column(i & 3, t);
            int k = keysAreRows ? row : column, q = keysAreRows ? column : row;
            if (k >= autoregressAtKey && k > q)
            {
                bits &= ~(1 << i);
            }
        }

        return bits;
    }

    // Column of bit i (0-3) for lane t: 2t, 2t+1, 8+2t, 9+2t.
    private static int Column(int i, int t) => 2 * t + (i & 1) + (i >> 1) * 8;

    private static int RowBits(in PlanTables plan, long maskBase, bool isFull, int row, int keyInBlock, int t)
    {
        if (isFull)
        {
            return 0xF;
        }

        var bit = row * plan.BlockSize + keyInBlock;
        var word = plan.Masks[maskBase + (bit >> 5)] >> (bit & 31);
        return (int)(((word >> (2 * t)) & 3u) | (((word >> (8 + 2 * t)) & 3u) << 2));
    }
}
