using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels;

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

    /// <summary>D += A . B with the hardware's fragment map (ARCHITECTURE.md); every lane of the warp must call it.</summary>
    public static void Run<TElement>(ref Ref<float> d0, ref Ref<float> d1, ref Ref<float> d2, ref Ref<float> d3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
        where TElement : struct, IElement<ushort>
    {
        var lane = Warp.LaneIdx;
        int g = lane / 4, t = lane % 4;
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
        for (var pair = 0; pair < 4; pair++)
        {
            // A row g (and g+8) k = 2*pair.. sits in lane g*4+pair; B column n, same k, sits in lane n*4+pair.
            var rowLane = g * 4 + pair;
            uint aLow = Warp.Shuffle(a0, rowLane), aLow8 = Warp.Shuffle(a1, rowLane);
            uint aHigh = Warp.Shuffle(a2, rowLane), aHigh8 = Warp.Shuffle(a3, rowLane);
            int evenLane = 2 * t * 4 + pair, oddLane = evenLane + 4;
            uint bEven = Warp.Shuffle(b0, evenLane), bEvenHigh = Warp.Shuffle(b1, evenLane);
            uint bOdd = Warp.Shuffle(b0, oddLane), bOddHigh = Warp.Shuffle(b1, oddLane);
            s0 += Dot2<TElement>(aLow, bEven) + Dot2<TElement>(aHigh, bEvenHigh);
            s1 += Dot2<TElement>(aLow, bOdd) + Dot2<TElement>(aHigh, bOddHigh);
            s2 += Dot2<TElement>(aLow8, bEven) + Dot2<TElement>(aHigh8, bEvenHigh);
            s3 += Dot2<TElement>(aLow8, bOdd) + Dot2<TElement>(aHigh8, bOddHigh);
        }

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
