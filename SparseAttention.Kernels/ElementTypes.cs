using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels;

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
    /// <remarks>ILGPU takes inline PTX only as a string literal at the call, so each type spells its instruction.</remarks>
    public void Mma(ref float d0, ref float d1, ref float d2, ref float d3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        Ref<float> r0 = d0, r1 = d1, r2 = d2, r3 = d3;
        Input<uint> x0 = a0, x1 = a1, x2 = a2, x3 = a3, y0 = b0, y1 = b1;
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};", ref r0, ref r1, ref r2, ref r3, ref x0, ref x1, ref x2, ref x3, ref y0, ref y1);
        d0 = r0.Value;
        d1 = r1.Value;
        d2 = r2.Value;
        d3 = r3.Value;
    }

    /// <inheritdoc/>
    public float ToFloat(ushort value) => (float)Interop.IntAsFloat(value);

    /// <inheritdoc/>
    /// <remarks>Integer rounding rather than ILGPU.Half's conversion, which truncates on the CPU accelerator.</remarks>
    public ushort FromFloat(float value)
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
    /// <remarks>ILGPU takes inline PTX only as a string literal at the call, so each type spells its instruction.</remarks>
    public void Mma(ref float d0, ref float d1, ref float d2, ref float d3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        Ref<float> r0 = d0, r1 = d1, r2 = d2, r3 = d3;
        Input<uint> x0 = a0, x1 = a1, x2 = a2, x3 = a3, y0 = b0, y1 = b1;
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};", ref r0, ref r1, ref r2, ref r3, ref x0, ref x1, ref x2, ref x3, ref y0, ref y1);
        d0 = r0.Value;
        d1 = r1.Value;
        d2 = r2.Value;
        d3 = r3.Value;
    }

    /// <inheritdoc/>
    public float ToFloat(ushort value) => Interop.IntAsFloat((uint)value << 16);

    /// <inheritdoc/>
    public ushort FromFloat(float value)
    {
        var bits = Interop.FloatAsInt(value);
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
        {
            return (ushort)((bits >> 16) | 0x40u);
        }

        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
}
