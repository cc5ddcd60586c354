using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>How a storage type converts to and from the fp32 that kernels compute in.</summary>
/// <typeparam name="T">What one element is stored as: <see cref="float"/>, or <see cref="ushort"/> bits for fp16 and bf16.</typeparam>
public interface IElement<T>
    where T : unmanaged
{
    /// <summary>Widens a stored element to fp32.</summary>
    float ToFloat(T value);

    /// <summary>Rounds an fp32 value to the storage type (round to nearest even).</summary>
    T FromFloat(float value);
}

/// <summary>fp32 storage: conversions are identities.</summary>
public readonly struct Fp32 : IElement<float>
{
    /// <inheritdoc/>
    public float ToFloat(float value) => value;

    /// <inheritdoc/>
    public float FromFloat(float value) => value;
}

/// <summary>IEEE fp16 carried as raw bits, because System.Half cannot be used inside ILGPU kernels on .NET 10.</summary>
public readonly struct Fp16 : IElement<ushort>, IMmaElement
{
    /// <inheritdoc/>
    public bool IsBFloat16 => false;

    /// <inheritdoc/>
    public uint Pack(float low, float high)
    {
        if (CudaAsm.IsSupported)
        {
            // cvt.rn.f16x2.f32 puts its first source in the upper half.
            Output<uint> packed = default;
            Input<float> upper = high, lower = low;
            CudaAsm.EmitRef("cvt.rn.f16x2.f32 %0, %1, %2;", ref packed, ref upper, ref lower);
            return packed.Value;
        }

        return Round(low) | ((uint)Round(high) << 16);
    }

    /// <inheritdoc/>
    /// <remarks>ILGPU takes inline PTX only as a string literal at the call, so each type spells its instruction.</remarks>
    public void Mma(ref Ref<float> d0, ref Ref<float> d1, ref Ref<float> d2, ref Ref<float> d3, ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, ref Input<uint> b0, ref Input<uint> b1) =>
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};", ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);

    /// <inheritdoc/>
    public float ToFloat(ushort value) => (float)Interop.IntAsFloat(value);

    /// <inheritdoc/>
    /// <remarks>
    /// One hardware <c>cvt</c> on CUDA; elsewhere integer rounding rather than ILGPU.Half's conversion, which truncates
    /// on the CPU accelerator.
    /// </remarks>
    public ushort FromFloat(float value)
    {
        return CudaAsm.IsSupported ? (ushort)(Pack(value, 0f) & 0xFFFFu) : Round(value);
    }

    // Round to nearest even in integer arithmetic; kept apart from FromFloat and Pack so neither calls the other.
    private static ushort Round(float value)
    {
        var bits = Interop.FloatAsInt(value);
        var sign = (bits >> 16) & 0x8000u;
        var magnitude = bits & 0x7FFFFFFFu;
        if (magnitude >= 0x7F800000u)
        {
            return (ushort)(sign | (magnitude > 0x7F800000u ? 0x7E00u : 0x7C00u));
        }

        if (magnitude >= 0x477FF000u)
        {
            // 65520 and above round to infinity.
            return (ushort)(sign | 0x7C00u);
        }

        if (magnitude >= 0x38800000u)
        {
            // Normal: rebias the exponent (127 - 15 = 112) and round the 13 dropped bits to nearest even.
            return (ushort)(sign | ((magnitude - (112u << 23) + 0xFFFu + ((magnitude >> 13) & 1u)) >> 13));
        }

        var exponent = (int)(magnitude >> 23);
        if (exponent < 102)
        {
            return (ushort)sign;
        }

        // Subnormal: the value is mantissa * 2^(exponent - 150), in units of 2^-24 that is mantissa >> (126 - exponent).
        var mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
        var shift = 126 - exponent;
        var result = mantissa >> shift;
        var remainder = mantissa & ((1u << shift) - 1u);
        var halfway = 1u << (shift - 1);
        if (remainder > halfway || (remainder == halfway && (result & 1u) != 0))
        {
            result++;
        }

        return (ushort)(sign | result);
    }
}

/// <summary>bf16 carried as raw bits: the top half of an fp32, rounded to nearest even.</summary>
public readonly struct Bf16 : IElement<ushort>, IMmaElement
{
    /// <inheritdoc/>
    public bool IsBFloat16 => true;

    /// <inheritdoc/>
    public uint Pack(float low, float high)
    {
        if (CudaAsm.IsSupported)
        {
            // cvt.rn.bf16x2.f32 puts its first source in the upper half.
            Output<uint> packed = default;
            Input<float> upper = high, lower = low;
            CudaAsm.EmitRef("cvt.rn.bf16x2.f32 %0, %1, %2;", ref packed, ref upper, ref lower);
            return packed.Value;
        }

        return Round(low) | ((uint)Round(high) << 16);
    }

    /// <inheritdoc/>
    /// <remarks>ILGPU takes inline PTX only as a string literal at the call, so each type spells its instruction.</remarks>
    public void Mma(ref Ref<float> d0, ref Ref<float> d1, ref Ref<float> d2, ref Ref<float> d3, ref Input<uint> a0, ref Input<uint> a1, ref Input<uint> a2, ref Input<uint> a3, ref Input<uint> b0, ref Input<uint> b1) =>
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};", ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);

    /// <inheritdoc/>
    public float ToFloat(ushort value) => Interop.IntAsFloat((uint)value << 16);

    /// <inheritdoc/>
    public ushort FromFloat(float value)
    {
        return CudaAsm.IsSupported ? (ushort)(Pack(value, 0f) & 0xFFFFu) : Round(value);
    }

    // Round to nearest even in integer arithmetic; kept apart from FromFloat and Pack so neither calls the other.
    private static ushort Round(float value)
    {
        var bits = Interop.FloatAsInt(value);
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
        {
            return (ushort)((bits >> 16) | 0x40u);
        }

        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
}
