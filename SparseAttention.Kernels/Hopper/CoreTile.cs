using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

/// <summary>
/// 64 token rows of one head (q, k or v) staged in the group's dynamic shared memory in the layout <c>wgmma</c> reads
/// with its 128-byte swizzle: per block of 64 features, row r's 128 bytes at <c>128 r</c>, its 16-byte quad c at quad
/// <c>c ^ (r % 8)</c>, so that the eight quads of a row and the eight rows of a quad fall in eight different groups of
/// four banks (the unswizzled layout put a warp's 32 cp.async copies into 32 wavefronts, ncu on an H200). A block
/// starts on a 1024-byte boundary, as the swizzle works on address bits. The same tile serves as a K-major operand (Q
/// and K: the features are the reduction) and as an MN-major one (V: the keys are); only the descriptors differ.
/// </summary>
internal readonly struct CoreTile
{
    /// <summary>Rows of a tile.</summary>
    public const int Rows = 64;

    /// <summary>Alignment of a tile's start in the shared window: the swizzle repeats every 1024 bytes.</summary>
    public const int Alignment = 1024;

    // Bytes of one block of 64 features: 64 rows of 128 bytes.
    private const int BlockBytes = Rows * 128;

    // Descriptor layout type of the 128-byte swizzle (bits 62-63).
    private const ulong Swizzle128 = 1ul << 62;

    private readonly ArrayView<uint> words;
    private readonly int firstByte;
    private readonly uint address;

    /// <summary>The tile from byte <paramref name="firstByte"/> of the dynamic shared memory <paramref name="dynamicWords"/> (a multiple of <see cref="Alignment"/> in the shared window on CUDA).</summary>
    public CoreTile(ArrayView<uint> dynamicWords, int firstByte)
    {
        words = dynamicWords;
        this.firstByte = firstByte;
        address = CudaAsm.IsSupported ? TensorCore.SharedBase() + (uint)firstByte : 0u;
    }

    private CoreTile(in CoreTile tile, int bytes)
    {
        words = tile.words;
        firstByte = tile.firstByte + bytes;
        address = tile.address + (uint)bytes;
    }

    /// <summary>The tile <paramref name="bytes"/> further on: the shared window's address is read once per kernel, not per tile (three uniform instructions each time).</summary>
    public CoreTile Shifted(int bytes) => new(this, bytes);

    /// <summary>Bytes of a tile of <paramref name="features"/> features.</summary>
    public static int Bytes(int features) => Rows * 2 * features;

    /// <summary>The first byte from <paramref name="firstByte"/> of the dynamic shared memory that starts a tile: aligned on CUDA, as it is elsewhere.</summary>
    public static int AlignedByte(int firstByte)
    {
        if (!CudaAsm.IsSupported)
        {
            return firstByte;
        }

        var start = TensorCore.SharedBase() + (uint)firstByte;
        return firstByte + (int)(((start + Alignment - 1) & ~(uint)(Alignment - 1)) - start);
    }

    /// <summary>
    /// The group starts copying the tile's 64 token rows from <paramref name="source"/>, starting at token
    /// <paramref name="token"/>, each thread the quads of its share; on CUDA they land at the next
    /// <see cref="AsyncCopy.WaitAll"/>, elsewhere at once.
    /// </summary>
    public void Stage(in TileSource source, int token)
    {
        // The row step is a multiple of 8 (at most 16 quads a row, 128 threads), so every pass keeps the row's swizzle.
        var passes = Rows / source.RowStep;
        var targetStep = 128 * source.RowStep;
        if (CudaAsm.IsSupported)
        {
            // HopperKernels checks that a tile takes at most AsyncCopy.MaxPasses passes.
            AsyncCopy.CopyPasses(passes, address + (uint)source.Offset, (uint)targetStep, source.Address(token), source.PassBytes, partial: false);
            return;
        }

        var quadView = words.Cast<Quad>();
        for (var pass = 0; pass < passes; pass++)
        {
            quadView[(firstByte + source.Offset + (pass * targetStep)) >> 4] = source.Pass(token, pass);
        }
    }

    /// <summary>
    /// Descriptor of the K-major operand of all 64 rows (A: 64 x 16, or B: 64 x 16 read as its transpose), features
    /// 0..15, the next 8 rows 1024 bytes further (stride offset; the leading offset is unused with this swizzle). A
    /// chain adds the later k-steps inside its statement: 32 bytes per k-step within a block of 64 features, 8192 per block.
    /// </summary>
    public ulong RowMajor() => Descriptor(address, 1024);

    /// <summary>
    /// Descriptor of the MN-major B operand keys 0..15 by features <paramref name="feature"/>..+63 (V, for <c>wgmma</c>
    /// with B transposed): the 64 features are one swizzle atom wide, the next 8 keys 1024 bytes further (stride
    /// offset). A chain adds 2048 bytes per k-step of 16 keys inside its statement.
    /// </summary>
    public ulong ColumnMajor(int feature) => Descriptor(address + (uint)((feature >> 6) * BlockBytes), 1024);

    /// <summary>The element at <paramref name="row"/>, <paramref name="feature"/> (the CPU twins' read).</summary>
    public ushort Element(int row, int feature)
    {
        var word = words[(firstByte + Offset(row, feature >> 3) + 2 * (feature & 7)) >> 2];
        return (ushort)((feature & 1) == 0 ? word & 0xFFFFu : word >> 16);
    }

    /// <summary>The byte of quad <paramref name="quad"/> of row <paramref name="row"/> within a tile.</summary>
    public static int Offset(int row, int quad) => (quad >> 3) * BlockBytes + 128 * row + 16 * ((quad & 7) ^ (row & 7));

    // Start address and stride byte offset in 16-byte units, leading offset 1 (unused), 128-byte swizzle.
    private static ulong Descriptor(uint start, int stride) =>
        ((ulong)(start >> 4) & 0x3FFFul) | (1ul << 16) | ((ulong)(stride >> 4) << 32) | Swizzle128;
}
