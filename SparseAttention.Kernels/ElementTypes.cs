using ILGPU;

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
public readonly struct Fp16 : IElement<ushort>
{
    /// <inheritdoc/>
    public float ToFloat(ushort value) => (float)Interop.IntAsFloat(value);

    /// <inheritdoc/>
    public ushort FromFloat(float value) => Interop.FloatAsInt((ILGPU.Half)value);
}

/// <summary>bf16 carried as raw bits: the top half of an fp32, rounded to nearest even.</summary>
public readonly struct Bf16 : IElement<ushort>
{
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
