using ILGPU;
using ILGPU.Runtime;

namespace SparseAttention.Kernels.Common;

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
    /// The group copies <paramref name="rows"/> rows of quads (<paramref name="walk"/> knows how many per row and this
    /// thread's first), the first at quad <paramref name="source"/> and the next <paramref name="sourceStride"/> quads
    /// apart, into the group's dynamic shared memory <paramref name="shared"/> from word <paramref name="word"/> with
    /// <paramref name="wordStride"/> words per row. Each thread loads four quads before it stores any, so four loads are in flight at once (a loop of
    /// one load and one store waits out a load latency per quad). Not <c>cp.async</c>: with it in a kernel, ptxas kept
    /// the local depots of the mma operands in memory (a 112-byte stack frame, 3x slower).
    /// </summary>
    public static void Stage(ArrayView<Quad> global, long source, long sourceStride, int rows, QuadWalk walk, ArrayView<Quad> shared, int word, int wordStride)
    {
        while (walk.Row < rows)
        {
            var batch = new QuadBatch(global, source, sourceStride, rows, walk);
            batch.Store(shared, word, wordStride);
            walk = batch.Rest;
        }
    }

    /// <summary>Throws unless <paramref name="view"/> starts on a 16-byte boundary, as the 16-byte loads and stores need (the ops check first, naming the user's parameter; this guards direct launches).</summary>
    public static void RequireAligned(ArrayView<Quad> view, string name)
    {
        var address = view.LoadEffectiveAddressAsPtr().ToInt64();
        if (address % 16 != 0)
        {
            throw new ArgumentException($"{name} starts at address 0x{address:x}, which is not 16-byte aligned: the fp16/bf16 kernels move 16 bytes at a time", name);
        }
    }

    /// <summary>The reverse of <see cref="Stage"/>: staged rows out to global memory, 16 bytes per store.</summary>
    public static void Unstage(ArrayView<Quad> shared, int word, int wordStride, int rows, QuadWalk walk, ArrayView<Quad> global, long target, long targetStride)
    {
        for (; walk.Row < rows; walk = walk.Next())
        {
            global[walk.Source(target, targetStride)] = shared[walk.Target(word, wordStride)];
        }
    }
}

/// <summary>
/// A thread's way through a tile of rows of quads, a group's width of quads per step: divisions once, where the walk is
/// made (hoisted out of the kernels' loops), then additions only.
/// </summary>
internal readonly struct QuadWalk
{
    private readonly int rowQuads, rowStep, quadStep;

    /// <summary>Starts thread <c>Group.IdxX</c> of the group on rows of <paramref name="rowQuads"/> quads.</summary>
    public QuadWalk(int rowQuads)
    {
        this.rowQuads = rowQuads;
        rowStep = TensorCore.Keep(Group.DimX / rowQuads);
        quadStep = TensorCore.Keep(Group.DimX - rowStep * rowQuads);
        Row = TensorCore.Keep(Group.IdxX / rowQuads);
        Quad = TensorCore.Keep(Group.IdxX - Row * rowQuads);
    }

    private QuadWalk(int rowQuads, int rowStep, int quadStep, int row, int quad)
    {
        this.rowQuads = rowQuads;
        this.rowStep = rowStep;
        this.quadStep = quadStep;
        Row = row;
        Quad = quad;
    }

    /// <summary>Row of this thread's quad.</summary>
    public int Row { get; }

    /// <summary>Quad within the row.</summary>
    public int Quad { get; }

    /// <summary>This thread's next quad, a group's width further.</summary>
    public QuadWalk Next()
    {
        var quad = Quad + quadStep;
        var carry = quad >= rowQuads ? 1 : 0;
        return new QuadWalk(rowQuads, rowStep, quadStep, Row + rowStep + carry, quad - carry * rowQuads);
    }

    /// <summary>Index of the quad among rows <paramref name="stride"/> quads apart from quad <paramref name="first"/>.</summary>
    public long Source(long first, long stride) => first + Row * stride + Quad;

    /// <summary>Index of the quad among staged rows of <paramref name="wordStride"/> words from word <paramref name="word"/>.</summary>
    public int Target(int word, int wordStride) => ((word + Row * wordStride) >> 2) + Quad;
}

/// <summary>
/// Up to four quads of a thread's walk, loaded together so their latencies overlap, and stored later: SDD loads the next
/// tile's keys as a batch while its warps compute the current tile.
/// </summary>
internal readonly struct QuadBatch
{
    private readonly Quad q0, q1, q2, q3;
    private readonly QuadWalk w0, w1, w2, w3;
    private readonly int rows;

    /// <summary>Loads this thread's next four quads (fewer past the last row) of rows <paramref name="sourceStride"/> quads apart from quad <paramref name="source"/>.</summary>
    public QuadBatch(ArrayView<Quad> global, long source, long sourceStride, int rows, QuadWalk walk)
    {
        this.rows = rows;
        w0 = walk;
        w1 = w0.Next();
        w2 = w1.Next();
        w3 = w2.Next();
        q0 = w0.Row < rows ? global[w0.Source(source, sourceStride)] : default;
        q1 = w1.Row < rows ? global[w1.Source(source, sourceStride)] : default;
        q2 = w2.Row < rows ? global[w2.Source(source, sourceStride)] : default;
        q3 = w3.Row < rows ? global[w3.Source(source, sourceStride)] : default;
    }

    /// <summary>Where this thread's walk goes on after the batch.</summary>
    public QuadWalk Rest => w3.Next();

    /// <summary>Stores the batch into staged rows of <paramref name="wordStride"/> words from word <paramref name="word"/>.</summary>
    public void Store(ArrayView<Quad> shared, int word, int wordStride)
    {
        if (w0.Row < rows)
        {
            shared[w0.Target(word, wordStride)] = q0;
        }

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
    }
}
