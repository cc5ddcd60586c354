using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>Recompute on the default path: the same bits with less peak memory (values are checked by the attention matrix).</summary>
public abstract class AttentionTests<T>
    where T : unmanaged
{
    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void RecomputeGivesBitIdenticalGradientsWithLessPeakMemory(string device)
    {
        // Three stacked attention layers, each feeding the next as q, k and v (so gradients also accumulate):
        // without recompute the forward keeps every layer's probabilities alive until backward.
        var (plain, plainPeak) = RecomputeProbe.Run<T>(TestDevices.Get(device), recompute: false, layers: 3);
        var (recomputed, recomputePeak) = RecomputeProbe.Run<T>(TestDevices.Get(device), recompute: true, layers: 3);
        for (var i = 0; i < plain.Length; i++)
        {
            CollectionAssert.AreEqual(plain[i], recomputed[i], $"result {i} differs with recompute");
        }

        Console.WriteLine($"peak bytes: {plainPeak} without recompute, {recomputePeak} with");
        Assert.IsLessThan(plainPeak, recomputePeak);
    }
}

[TestClass]
public sealed class AttentionFp32Tests : AttentionTests<float>;

[TestClass]
public sealed class AttentionFp16Tests : AttentionTests<Half>;

[TestClass]
public sealed class AttentionBf16Tests : AttentionTests<BFloat16>;

[TestClass]
public sealed class TapeMemoryTests
{
    [TestMethod]
    public void StridedIntermediatesAreFreedByBackwardAndTapeDisposal()
    {
        using var device = SparseAttention.Accelerators.ComputeDevice.CreateCpu();
        var random = TestData.NewRandom("strided intermediates");
        var shape = new AttentionShape(1, 64, 1, 16);
        var (values, _) = TestData.Values<float>(random, shape.Elements);
        using var x = DeviceTensor<float>.FromSpan(device, values, 1, 64, 16);

        // A first call uploads the plan, which stays on the device while it is within ComputeDevice.PlanCacheBytes.
        BlockSparseAttention.Compute(x, x, x, 1, AttentionPattern.Strided(4), 16).Dispose();
        var inputs = device.AllocatedBytes;
        using (var tape = new Tape())
        {
            using var output = BlockSparseAttention.Compute(x, x, x, 1, AttentionPattern.Strided(4), 16, tape: tape);
            using (tape.Backward(output, x))
            {
            }

            Assert.AreEqual(inputs + output.Length * sizeof(float), device.AllocatedBytes, "after backward only the output is left");
        }

        using (var unused = new Tape())
        {
            BlockSparseAttention.Compute(x, x, x, 1, AttentionPattern.Strided(4), 16, tape: unused).Dispose();
        }

        Assert.AreEqual(inputs, device.AllocatedBytes, "disposing a tape without backward frees what it held");
    }
}
