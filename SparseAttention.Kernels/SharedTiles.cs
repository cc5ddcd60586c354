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
    /// <paramref name="source"/> and the next <paramref name="sourceStride"/> quads apart, into the group's dynamic
    /// shared memory <paramref name="shared"/> from word <paramref name="word"/> with <paramref name="wordStride"/>
    /// words per row. Each thread loads four quads before it stores any, so four loads are in flight at once (a loop of
    /// one load and one store waits out a load latency per quad). Not <c>cp.async</c>: with it in a kernel, ptxas kept
    /// the local depots of the mma operands in memory (a 112-byte stack frame, 3x slower).
    /// </summary>
    public static void Stage(ArrayView<Quad> global, long source, long sourceStride, int rows, int rowQuads, ArrayView<Quad> shared, int word, int wordStride)
    {
        var count = rows * rowQuads;
        var threads = Group.DimX;
        for (var first = Group.IdxX; first < count; first += 4 * threads)
        {
            var q0 = global[Source(first, source, sourceStride, rowQuads)];
            var q1 = first + threads < count ? global[Source(first + threads, source, sourceStride, rowQuads)] : default;
            var q2 = first + 2 * threads < count ? global[Source(first + 2 * threads, source, sourceStride, rowQuads)] : default;
            var q3 = first + 3 * threads < count ? global[Source(first + 3 * threads, source, sourceStride, rowQuads)] : default;
            shared[Target(first, word, wordStride, rowQuads)] = q0;
            if (first + threads < count)
            {
                shared[Target(first + threads, word, wordStride, rowQuads)] = q1;
            }

            if (first + 2 * threads < count)
            {
                shared[Target(first + 2 * threads, word, wordStride, rowQuads)] = q2;
            }

            if (first + 3 * threads < count)
            {
                shared[Target(first + 3 * threads, word, wordStride, rowQuads)] = q3;
            }
        }
    }

    /// <summary>Throws unless <paramref name="view"/> starts on a 16-byte boundary, as the staged kernels' copies need.</summary>
    public static void RequireAligned(ArrayView<Quad> view, string name)
    {
        var address = view.LoadEffectiveAddressAsPtr().ToInt64();
        if (address % 16 != 0)
        {
            throw new ArgumentException($"{name} starts at address 0x{address:x}, which is not 16-byte aligned: the tensor-core kernels move 16 bytes at a time", name);
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

    private static long Source(int index, long source, long sourceStride, int rowQuads) => source + index / rowQuads * sourceStride + index % rowQuads;

    private static int Target(int index, int word, int wordStride, int rowQuads) => (word + index / rowQuads * wordStride) / 4 + index % rowQuads;
}
