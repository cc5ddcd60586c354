using ILGPU;
using ILGPU.Runtime;

namespace SparseAttention.Kernels;

/// <summary>Sixteen bytes (eight 16-bit elements): ILGPU moves a view element of this type with one vector load or store.</summary>
public struct Quad
{
    /// <summary>Elements 0 and 1.</summary>
    public uint X;

    /// <summary>Elements 2 and 3.</summary>
    public uint Y;

    /// <summary>Elements 4 and 5.</summary>
    public uint Z;

    /// <summary>Elements 6 and 7.</summary>
    public uint W;
}

/// <summary>
/// Tiles of 16-bit elements staged in a group's dynamic shared memory, rows padded by four words so that the
/// fragment reads of a warp (lane (g, t) reads word g * stride + t) hit 32 different banks.
/// </summary>
internal static class SharedTiles
{
    /// <summary>Largest tile edge staged at once: 64 x 128 operands keep a group under the default 48 KB.</summary>
    public const int MaxEdge = 64;

    /// <summary>Edge of the square tiles a kernel stages for blocks of <paramref name="blockSize"/>.</summary>
    public static int Edge(int blockSize) => Math.Min(blockSize, MaxEdge);

    /// <summary>Words of one staged row of <paramref name="elements"/> 16-bit elements, padding included.</summary>
    public static int RowWords(int elements) => elements / 2 + 4;

    /// <summary>Dynamic shared memory of <paramref name="words"/> 32-bit words.</summary>
    public static SharedMemoryConfig Words(int words) => SharedMemoryConfig.RequestDynamic<uint>(words);

    /// <summary>
    /// The group copies <paramref name="rows"/> rows of <paramref name="rowQuads"/> quads, the first at quad
    /// <paramref name="source"/> and the next <paramref name="sourceStride"/> quads apart, into shared words from
    /// <paramref name="word"/> with <paramref name="wordStride"/> words per row: one 16-byte load and store per quad.
    /// </summary>
    public static void Stage(ArrayView<Quad> global, long source, long sourceStride, int rows, int rowQuads, ArrayView<Quad> shared, int word, int wordStride)
    {
        var count = rows * rowQuads;
        for (var i = Group.IdxX; i < count; i += Group.DimX)
        {
            int row = i / rowQuads, quad = i % rowQuads;
            shared[(word + row * wordStride) / 4 + quad] = global[source + row * sourceStride + quad];
        }
    }

    /// <summary>The reverse of <see cref="Stage"/>: staged rows out to global memory, 16 bytes per store.</summary>
    public static void Unstage(ArrayView<Quad> shared, int word, int wordStride, int rows, int rowQuads, ArrayView<Quad> global, long target, long targetStride)
    {
        var count = rows * rowQuads;
        for (var i = Group.IdxX; i < count; i += Group.DimX)
        {
            int row = i / rowQuads, quad = i % rowQuads;
            global[target + row * targetStride + quad] = shared[(word + row * wordStride) / 4 + quad];
        }
    }
}
