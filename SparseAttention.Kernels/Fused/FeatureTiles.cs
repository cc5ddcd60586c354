using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// One warp's fp32 accumulator of 16 rows by <see cref="Features"/> features in registers, as m16n8 fragments: ILGPU has
/// no register arrays, so a width is a nesting of <see cref="Tile8"/> pairs that the compiler inlines into fields.
/// </summary>
internal interface IFeatureTiles
{
    /// <summary>Features covered.</summary>
    int Features { get; }

    /// <summary>Multiplies row g by <paramref name="low"/> and row g+8 by <paramref name="high"/>.</summary>
    void Scale(float low, float high);

    /// <summary>
    /// Adds A . B, A the 16x16 fragment in <paramref name="a0"/>..<paramref name="a3"/> and B 16 rows of
    /// <paramref name="dense"/> (also seen as <paramref name="densePairs"/>) from feature <paramref name="feature"/>;
    /// <paramref name="rowZero"/> is the element of B's row 0, feature 0, and <paramref name="rowStep"/> the step between rows.
    /// </summary>
    void Accumulate<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, ArrayView<ushort> dense, ArrayView<uint> densePairs, long rowZero, long rowStep, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement;

    /// <summary>Rounds and stores row g times <paramref name="low"/> at <paramref name="index"/> (row g, feature 2t) and row g+8 times <paramref name="high"/> <paramref name="eightRows"/> further.</summary>
    void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement;
}

/// <summary>16 rows by 8 features: lane (g, t) holds (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1).</summary>
internal struct Tile8 : IFeatureTiles
{
    // Plain floats, copied into Ref locals around each mma: Ref fields made ptxas keep the whole tile in local memory
    // (a 752-byte stack frame; plain fields: none).
    private float c0, c1, c2, c3;

    /// <inheritdoc/>
    public readonly int Features => 8;

    /// <inheritdoc/>
    public void Scale(float low, float high)
    {
        c0 *= low;
        c1 *= low;
        c2 *= high;
        c3 *= high;
    }

    /// <inheritdoc/>
    public void Accumulate<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, ArrayView<ushort> dense, ArrayView<uint> densePairs, long rowZero, long rowStep, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        Input<uint> b0, b1;
        if (CudaAsm.IsSupported)
        {
            // Lane (g, t) loads the pair (row g, features 2t, 2t+1) of each 8x8 quarter; movmatrix.trans turns that into
            // (rows 2t, 2t+1, feature g), B's fragment: two 4-byte loads instead of four 2-byte loads and two packs.
            var lane = Warp.LaneIdx;
            var pair = (rowZero + (lane >> 2) * rowStep + feature + 2 * (lane & 3)) >> 1;
            b0 = TensorCore.Transpose(densePairs[pair]);
            b1 = TensorCore.Transpose(densePairs[pair + 4 * rowStep]);
        }
        else
        {
            var lane = Warp.LaneIdx;
            var first = rowZero + 2 * (lane & 3) * rowStep + feature + (lane >> 2);
            var eightRows = 8 * rowStep;
            b0 = TensorCore.Pack(dense[first], dense[first + rowStep]);
            b1 = TensorCore.Pack(dense[first + eightRows], dense[first + eightRows + rowStep]);
        }

        Ref<float> d0 = c0, d1 = c1, d2 = c2, d3 = c3;
        MmaEmulation.Mma<TElement>(ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
        c0 = d0.Value;
        c1 = d1.Value;
        c2 = d2.Value;
        c3 = d3.Value;
    }

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float low, float high, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var element = default(TElement);
        pairs[(index + feature) >> 1] = element.Pack(c0 * low, c1 * low);
        pairs[(index + feature + eightRows) >> 1] = element.Pack(c2 * high, c3 * high);
    }
}

/// <summary>Two accumulators side by side: <typeparamref name="TLow"/>'s features first.</summary>
internal struct Tiles<TLow, THigh> : IFeatureTiles
    where TLow : struct, IFeatureTiles
    where THigh : struct, IFeatureTiles
{
    // Changed only through their own methods, which the compiler does not count as assignments.
#pragma warning disable CS0649
    private TLow low;
    private THigh high;
#pragma warning restore CS0649

    /// <inheritdoc/>
    public readonly int Features => default(TLow).Features + default(THigh).Features;

    /// <inheritdoc/>
    public void Scale(float lowRow, float highRow)
    {
        low.Scale(lowRow, highRow);
        high.Scale(lowRow, highRow);
    }

    /// <inheritdoc/>
    public void Accumulate<TElement>(ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, ArrayView<ushort> dense, ArrayView<uint> densePairs, long rowZero, long rowStep, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, dense, densePairs, rowZero, rowStep, feature);
        high.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, dense, densePairs, rowZero, rowStep, feature + default(TLow).Features);
    }

    /// <inheritdoc/>
    public readonly void Store<TElement>(ArrayView<uint> pairs, long index, long eightRows, float lowRow, float highRow, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        low.Store<TElement>(pairs, index, eightRows, lowRow, highRow, feature);
        high.Store<TElement>(pairs, index, eightRows, lowRow, highRow, feature + default(TLow).Features);
    }
}
