using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

/// <summary>
/// 64 token rows of one head (q, k or v) staged in the group's dynamic shared memory in the layout <c>wgmma</c> reads
/// without swizzling: 8 x 8 core matrices of 128 contiguous bytes (eight rows of one 16-byte quad), the 64 rows of quad
/// column c at <c>c * 1024</c> bytes, row r at <c>16 r</c> within it. The same tile serves as a K-major operand (Q and K:
/// the features are the reduction) and as an MN-major one (V: the keys are), only its descriptors differ.
/// </summary>
internal readonly struct CoreTile
{
    /// <summary>Rows of a tile.</summary>
    public const int Rows = 64;

    // Bytes of one quad column: 64 rows of 16 bytes.
    private const int ColumnBytes = Rows * 16;

    private readonly ArrayView<uint> words;
    private readonly int firstByte;
    private readonly uint address;

    /// <summary>The tile from byte <paramref name="firstByte"/> of the dynamic shared memory <paramref name="dynamicWords"/>.</summary>
    public CoreTile(ArrayView<uint> dynamicWords, int firstByte)
    {
        words = dynamicWords;
        this.firstByte = firstByte;
        address = CudaAsm.IsSupported ? TensorCore.SharedBase() + (uint)firstByte : 0u;
    }

    /// <summary>Bytes of a tile of <paramref name="features"/> features.</summary>
    public static int Bytes(int features) => Rows * 2 * features;

    /// <summary>
    /// The group starts copying the tile's 64 token rows, row r from element <paramref name="first"/> + r *
    /// <paramref name="tokenStep"/> (also at <paramref name="globalAddress"/>, in bytes, on CUDA), each thread the quads
    /// <paramref name="share"/> gives it; on CUDA they land at the next <see cref="AsyncCopy.WaitAll"/>, elsewhere at once.
    /// </summary>
    public void Stage(ArrayView<Quad> quads, long globalAddress, long first, long tokenStep, in CoreShare share)
    {
        var element = first + share.Row * tokenStep + 8 * share.Column;
        var offset = share.Column * ColumnBytes + 16 * share.Row;
        if (CudaAsm.IsSupported)
        {
            // Written out, as StagedRows' passes are; a share has at most MaxPasses of them.
            var source = globalAddress + 2 * element;
            var sourceStep = 2 * share.RowStep * tokenStep;
            var target = address + (uint)offset;
            var targetStep = (uint)(16 * share.RowStep);
            var passes = Rows / share.RowStep;
            AsyncCopy.CopyPass(0, passes, target, targetStep, source, sourceStep);
            AsyncCopy.CopyPass(1, passes, target, targetStep, source, sourceStep);
            AsyncCopy.CopyPass(2, passes, target, targetStep, source, sourceStep);
            AsyncCopy.CopyPass(3, passes, target, targetStep, source, sourceStep);
            AsyncCopy.CopyPass(4, passes, target, targetStep, source, sourceStep);
            AsyncCopy.CopyPass(5, passes, target, targetStep, source, sourceStep);
            AsyncCopy.CopyPass(6, passes, target, targetStep, source, sourceStep);
            AsyncCopy.CopyPass(7, passes, target, targetStep, source, sourceStep);
            return;
        }

        var quadView = words.Cast<Quad>();
        for (var row = share.Row; row < Rows; row += share.RowStep)
        {
            quadView[(firstByte + offset) >> 4] = quads[element >> 3];
            element += share.RowStep * tokenStep;
            offset += 16 * share.RowStep;
        }
    }

    /// <summary>
    /// Descriptor of the K-major operand of all 64 rows (A: 64 x 16, or B: 64 x 16 read as its
    /// transpose), features 16 <paramref name="kStep"/>..+15: the next core matrix along the features is a quad column
    /// further (leading offset), the next along the rows 128 bytes (stride offset).
    /// </summary>
    public ulong RowMajor(int kStep) => Descriptor(address + (uint)(2 * kStep * ColumnBytes), ColumnBytes, 128);

    /// <summary>
    /// Descriptor of the MN-major B operand keys 16 <paramref name="kStep"/>..+15 by features <paramref name="feature"/>..+63
    /// (V, for <c>wgmma</c> with B transposed): the next core matrix along the keys is 128 bytes further (leading offset),
    /// the next along the features a quad column (stride offset).
    /// </summary>
    public ulong ColumnMajor(int kStep, int feature) => Descriptor(address + (uint)((feature >> 3) * ColumnBytes + 256 * kStep), 128, ColumnBytes);

    /// <summary>The element at <paramref name="row"/>, <paramref name="feature"/> (the CPU twins' read).</summary>
    public ushort Element(int row, int feature)
    {
        var word = words[(firstByte + (feature >> 3) * ColumnBytes + 16 * row + 2 * (feature & 7)) >> 2];
        return (ushort)((feature & 1) == 0 ? word & 0xFFFFu : word >> 16);
    }

    // Start address, leading and stride byte offsets, each in 16-byte units; no swizzle (bits 62-63 zero).
    private static ulong Descriptor(uint start, int leading, int stride) =>
        ((ulong)(start >> 4) & 0x3FFFul) | ((ulong)(leading >> 4) << 16) | ((ulong)(stride >> 4) << 32);
}

/// <summary>
/// Which 16-byte quads of a <see cref="CoreTile"/> one thread of a 128-thread group copies: quad column
/// <see cref="Column"/> of rows <see cref="Row"/>, + <see cref="RowStep"/>, ... Eight consecutive threads take eight
/// consecutive rows of one column, so a warp's 32 copies land in distinct banks (one core matrix's 128 bytes per eight).
/// A share has at most <see cref="StagedRows.MaxPasses"/> quads.
/// </summary>
internal readonly struct CoreShare
{
    /// <summary>The share of thread <c>Group.IdxX</c> for rows of <paramref name="features"/> 16-bit elements.</summary>
    public CoreShare(int features)
    {
        var columns = features >> 3;
        var thread = Group.IdxX;
        var quad = thread >> 3;
        var rowBlock = TensorCore.Keep(quad / columns);
        Column = quad - rowBlock * columns;
        Row = 8 * rowBlock + (thread & 7);
        RowStep = 8 * (TokenGroup.Threads / 8 / columns);
    }

    /// <summary>The thread's first row.</summary>
    public int Row { get; }

    /// <summary>Rows between the thread's quads.</summary>
    public int RowStep { get; }

    /// <summary>The quad column.</summary>
    public int Column { get; }
}
