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
    public static int RowWords(int elements) => (elements >> 1) + 4;

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
        var walk = new QuadWalk(rowQuads);
        while (walk.Row < rows)
        {
            QuadWalk w1 = walk.Next(), w2 = w1.Next(), w3 = w2.Next();
            var q0 = global[walk.Source(source, sourceStride)];
            var q1 = w1.Row < rows ? global[w1.Source(source, sourceStride)] : default;
            var q2 = w2.Row < rows ? global[w2.Source(source, sourceStride)] : default;
            var q3 = w3.Row < rows ? global[w3.Source(source, sourceStride)] : default;
            shared[walk.Target(word, wordStride)] = q0;
            if (w1.Row < rows)
            {
                shared[w1.Target(word, wordStride)] = q1;
            }

            if (w2.Row < rows)
            {
                shared[w2.Target(word, wordStride)] = q2;
            }

            if (w3.Row < rows)
            {
                shared[w3.Target(word, wordStride)] = q3;
            }

            walk = w3.Next();
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
        for (var walk = new QuadWalk(rowQuads); walk.Row < rows; walk = walk.Next())
        {
            global[walk.Source(target, targetStride)] = shared[walk.Target(word, wordStride)];
        }
    }

    /// <summary>
    /// A thread's way through a tile of rows of quads, a group's width of quads per step: one division to start, then
    /// additions only (a division per quad was a large share of the staged kernels' instructions).
    /// </summary>
    private readonly struct QuadWalk
    {
        private readonly int rowQuads, rowStep, quadStep;

        public QuadWalk(int rowQuads)
        {
            this.rowQuads = rowQuads;
            rowStep = Group.DimX / rowQuads;
            quadStep = Group.DimX % rowQuads;
            Row = Group.IdxX / rowQuads;
            Quad = Group.IdxX % rowQuads;
        }

        private QuadWalk(int rowQuads, int rowStep, int quadStep, int row, int quad)
        {
            this.rowQuads = rowQuads;
            this.rowStep = rowStep;
            this.quadStep = quadStep;
            Row = row;
            Quad = quad;
        }

        public int Row { get; }

        public int Quad { get; }

        public QuadWalk Next()
        {
            var quad = Quad + quadStep;
            var carry = quad >= rowQuads ? 1 : 0;
            return new QuadWalk(rowQuads, rowStep, quadStep, Row + rowStep + carry, quad - carry * rowQuads);
        }

        public long Source(long first, long stride) => first + Row * stride + Quad;

        public int Target(int word, int wordStride) => ((word + Row * wordStride) >> 2) + Quad;
    }
}
