namespace SparseAttention.Tensors;

/// <summary>bfloat16 on the host: the top 16 bits of an fp32 (.NET 10 has no public BFloat16 type).</summary>
/// <param name="Bits">The raw bit pattern.</param>
public readonly record struct BFloat16(ushort Bits)
{
    /// <summary>Rounds an fp32 to bf16, to nearest even; NaN stays NaN.</summary>
    public static explicit operator BFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return new BFloat16((ushort)((bits >> 16) | 0x40));
        }

        return new BFloat16((ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16));
    }

    /// <summary>Widens exactly to fp32.</summary>
    public static implicit operator float(BFloat16 value) => BitConverter.UInt32BitsToSingle((uint)value.Bits << 16);

    /// <summary>The value as an fp32 string.</summary>
    public override string ToString() => ((float)this).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
