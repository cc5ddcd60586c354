using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

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
    /// shared memory <paramref name="shared"/> from word <paramref name="word"/> with <paramref name="wordStride"/> words per row. On CUDA each quad is one
    /// <c>cp.async</c> from <paramref name="address"/> (the device address of <paramref name="global"/>), so every copy
    /// of the group is in flight at once (a loop of loads and stores waits out one load latency per quad); complete
    /// them with <see cref="Wait"/>. Elsewhere plain 16-byte copies.
    /// </summary>
    public static void Stage(ArrayView<Quad> global, long address, long source, long sourceStride, int rows, int rowQuads, ArrayView<Quad> shared, int word, int wordStride)
    {
        var count = rows * rowQuads;
        if (CudaAsm.IsSupported)
        {
            var sharedAddress = SharedAddress();
            for (var i = Group.IdxX; i < count; i += Group.DimX)
            {
                int row = i / rowQuads, quad = i % rowQuads;
                CudaAsm.Emit(
                    "{ .reg .u64 g; cvta.to.global.u64 g, %1; cp.async.cg.shared.global [%0], [g], 16; }",
                    sharedAddress + (uint)((word + row * wordStride) * 4 + quad * 16),
                    (ulong)(address + (source + row * sourceStride + quad) * 16));
            }
        }
        else
        {
            for (var i = Group.IdxX; i < count; i += Group.DimX)
            {
                int row = i / rowQuads, quad = i % rowQuads;
                shared[(word + row * wordStride) / 4 + quad] = global[source + row * sourceStride + quad];
            }
        }
    }

    /// <summary>Waits for this thread's <see cref="Stage"/> copies, then for the whole group.</summary>
    public static void Wait()
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cp.async.wait_all;");
        }

        Group.Barrier();
    }

    /// <summary>Throws unless <paramref name="address"/>, where <paramref name="name"/> starts, is 16-byte aligned, as the staged kernels' copies need.</summary>
    public static void RequireAligned(long address, string name)
    {
        if (address % 16 != 0)
        {
            throw new ArgumentException($"{name} starts at address 0x{address:x}, which is not 16-byte aligned: the tensor-core kernels move 16 bytes at a time", name);
        }
    }

    // Shared-window address of the dynamic allocation: ILGPU names it __dyn_shared_alloca (pinned to ILGPU 1.5.3).
    private static uint SharedAddress()
    {
        Output<uint> address = default;
        CudaAsm.EmitRef("mov.u32 %0, __dyn_shared_alloca;", ref address);
        return address.Value;
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
