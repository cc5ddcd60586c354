using SparseAttention.Kernels.Common;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

[TestClass]
public sealed class ElementTypeTests
{
    [TestMethod]
    public void Fp16RoundingMatchesSystemHalfIncludingSubnormalsAndTies()
    {
        var random = TestData.NewRandom("fp16 rounding");
        var converter = default(Fp16);
        float[] special = [0f, -0f, 65504f, 65519.99f, 65520f, 1e-8f, 2.98e-8f, 5.96e-8f, 6.1e-5f, 1.0009765625f, 1.00146484375f, float.PositiveInfinity, float.NegativeInfinity];
        var values = special.Concat(Enumerable.Range(0, 200_000).Select(_ => (float)((random.NextDouble() * 2 - 1) * Math.Pow(10, random.Next(-9, 6)))));
        foreach (var value in values)
        {
            Assert.AreEqual(BitConverter.HalfToUInt16Bits((Half)value), converter.FromFloat(value), $"value {value:R}");
        }

        Assert.IsTrue(float.IsNaN(converter.ToFloat(converter.FromFloat(float.NaN))));
    }

    [TestMethod]
    public void Fp16WideningIsExactForEveryFiniteBitPattern()
    {
        var converter = default(Fp16);
        for (var bits = 0; bits < 65536; bits++)
        {
            var half = BitConverter.UInt16BitsToHalf((ushort)bits);
            if (Half.IsFinite(half))
            {
                Assert.AreEqual((float)half, converter.ToFloat((ushort)bits), $"bits {bits:X4}");
            }
        }
    }

    [TestMethod]
    public void Bf16KernelAndHostRoundingAgree()
    {
        var random = TestData.NewRandom("bf16 rounding");
        var converter = default(Bf16);
        for (var i = 0; i < 100_000; i++)
        {
            var value = (float)((random.NextDouble() * 2 - 1) * Math.Pow(10, random.Next(-30, 30)));
            var host = (BFloat16)value;
            Assert.AreEqual(host.Bits, converter.FromFloat(value));
            Assert.AreEqual((float)host, converter.ToFloat(host.Bits));
            Assert.IsLessThanOrEqualTo(Math.Abs(value) / 256, Math.Abs(value - host), "rounding error within half an ulp of 8 bits");
        }
    }
}
