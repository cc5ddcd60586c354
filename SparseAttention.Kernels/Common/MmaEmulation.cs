using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>
/// <c>mma.sync.m16n8k16</c> computed with warp shuffles, for the CPU accelerator: the fused kernels keep P in registers,
/// so their plain twin cannot re-read it from memory the way the unfused kernels' twins do.
/// </summary>
internal static class MmaEmulation
{
    /// <summary>D += A . B on tensor cores where there are any, else by <see cref="Run{TElement}"/>; every lane must call it.</summary>
    public static void Mma<TElement>(ref Ref<float> d0, ref Ref<float> d1, ref Ref<float> d2, ref Ref<float> d3, ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, ref Input<uint> b0, ref Input<uint> b1)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        if (CudaAsm.IsSupported)
        {
            default(TElement).Mma(ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
        }
        else
        {
            Run<TElement>(ref d0, ref d1, ref d2, ref d3, a0.Value, a1.Value, a2.Value, a3.Value, b0.Value, b1.Value);
        }
    }

    /// <summary>
    /// c += A . B for an accumulator kept in plain float fields: copied into <see cref="Ref{T}"/> locals around the mma,
    /// because as <see cref="Ref{T}"/> fields ptxas kept whole register tiles on the stack.
    /// </summary>
    public static void Accumulate<TElement>(ref float c0, ref float c1, ref float c2, ref float c3, ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, uint b0, uint b1)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        Input<uint> x0 = b0, x1 = b1;
        Ref<float> d0 = c0, d1 = c1, d2 = c2, d3 = c3;
        Mma<TElement>(ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref x0, ref x1);
        c0 = d0.Value;
        c1 = d1.Value;
        c2 = d2.Value;
        c3 = d3.Value;
    }

    /// <summary>Bytes at the start of the dynamic shared memory a warp needs for the emulation: six registers per lane.</summary>
    public const int WarpBytes = 32 * 6 * 4;

    /// <summary>
    /// D += A . B with the hardware's fragment map (docs/tensor-cores.md §2); every lane of the warp must call it. The lanes
    /// swap fragments through shared memory: on the CPU accelerator a warp barrier costs as much as a shuffle, and this
    /// needs two instead of 32 shuffles.
    /// </summary>
    public static void Run<TElement>(ref Ref<float> d0, ref Ref<float> d1, ref Ref<float> d2, ref Ref<float> d3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
        where TElement : struct, IElement<ushort>
    {
        // Dynamic, so the CUDA build (where this branch is dead but still emitted) declares no shared memory per call site.
        var fragments = ILGPU.SharedMemory.GetDynamic<uint>();
        var lane = Warp.LaneIdx;
        var warpBase = Group.IdxX / 32 * 32 * 6;
        var mine = warpBase + lane * 6;
        fragments[mine] = a0;
        fragments[mine + 1] = a1;
        fragments[mine + 2] = a2;
        fragments[mine + 3] = a3;
        fragments[mine + 4] = b0;
        fragments[mine + 5] = b1;
        Warp.Barrier();
        int g = lane / 4, t = lane % 4;
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
        for (var pair = 0; pair < 4; pair++)
        {
            // A row g (and g+8) k = 2*pair.. sits in lane g*4+pair; B column n, same k, sits in lane n*4+pair.
            var row = warpBase + (g * 4 + pair) * 6;
            uint aLow = fragments[row], aLow8 = fragments[row + 1], aHigh = fragments[row + 2], aHigh8 = fragments[row + 3];
            int even = warpBase + (2 * t * 4 + pair) * 6, odd = even + 4 * 6;
            uint bEven = fragments[even + 4], bEvenHigh = fragments[even + 5], bOdd = fragments[odd + 4], bOddHigh = fragments[odd + 5];
            s0 += Dot2<TElement>(aLow, bEven) + Dot2<TElement>(aHigh, bEvenHigh);
            s1 += Dot2<TElement>(aLow, bOdd) + Dot2<TElement>(aHigh, bOddHigh);
            s2 += Dot2<TElement>(aLow8, bEven) + Dot2<TElement>(aHigh8, bEvenHigh);
            s3 += Dot2<TElement>(aLow8, bOdd) + Dot2<TElement>(aHigh8, bOddHigh);
        }

        // No lane may overwrite its fragments for the next mma before every lane has read these.
        Warp.Barrier();
        d0.Value += s0;
        d1.Value += s1;
        d2.Value += s2;
        d3.Value += s3;
    }

    private static float Dot2<TElement>(uint x, uint y)
        where TElement : struct, IElement<ushort>
    {
        var element = default(TElement);
        return element.ToFloat((ushort)(x & 0xFFFFu)) * element.ToFloat((ushort)(y & 0xFFFFu))
            + element.ToFloat((ushort)(x >> 16)) * element.ToFloat((ushort)(y >> 16));
    }
}
