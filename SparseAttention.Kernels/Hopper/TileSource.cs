using ILGPU;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

/// <summary>
/// One tensor's token rows of a (sequence, head) as this thread stages them into <see cref="CoreTile"/>s: its first
/// quad's element and global address at token 0, worked out once before a walk, so that a step's staging only adds the
/// step's token (recomputed in every staging, the addresses took about 80 of the forward's 430 instructions a step).
/// </summary>
internal readonly struct TileSource
{
    private readonly ArrayView<Quad> quads;
    private readonly long element, address, tokenStep;
    private readonly uint tokenBytes;

    /// <summary>The rows of <paramref name="quads"/> (global address <paramref name="deviceAddress"/>, taken on the host) for <paramref name="group"/>'s (sequence, head).</summary>
    public TileSource(ArrayView<Quad> quads, long deviceAddress, in TokenGroup group)
    {
        this.quads = quads;
        var share = group.Share;
        RowStep = share.RowStep;
        Offset = CoreTile.Offset(share.Row, share.Element >> 3);
        tokenStep = group.TokenStep;
        tokenBytes = (uint)(2 * tokenStep);
        element = group.HeadZero + share.Row * tokenStep + share.Element;
        address = AsyncCopy.ToGlobal(deviceAddress) + 2 * element;
    }

    /// <summary>Rows between this thread's passes.</summary>
    public int RowStep { get; }

    /// <summary>The byte of this thread's first quad in a tile (its swizzled place).</summary>
    public int Offset { get; }

    /// <summary>Bytes between this thread's passes in global memory.</summary>
    public long PassBytes => (long)((ulong)tokenBytes * (uint)RowStep);

    /// <summary>This thread's quad of pass <paramref name="pass"/> of the staging at <paramref name="token"/> (the CPU twins copy it).</summary>
    public Quad Pass(int token, int pass) => quads[(element + ((long)token + pass * RowStep) * tokenStep) >> 3];

    /// <summary>The global byte address of this thread's first quad in the row of <paramref name="token"/> (CUDA): the token times the bytes between tokens, both 32-bit operands of one wide multiply (the launchers check the stride fits).</summary>
    public long Address(int token) => address + (long)((ulong)(uint)token * tokenBytes);
}
