using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>The fused kernels: determinism, recompute bit-identity and what they reject (values are checked by the attention matrix).</summary>
public abstract class FusedAttentionTests<T>
    where T : unmanaged
{
    private static readonly AttentionOptions Fused = new() { Fused = true };

    [TestMethod]
    [DataRow(TestDevices.Cpu, false)]
    [DataRow(TestDevices.Cuda, false)]
    [DataRow(TestDevices.Cpu, true)]
    [DataRow(TestDevices.Cuda, true)]
    public void BackwardIsDeterministicAndRecomputeBitIdentical(string device, bool hopper)
    {
        var dev = TestDevices.Get(device);
        if (hopper && dev.IsCuda && dev.Capability.ComputeCapability != 90)
        {
            throw new AssertInconclusiveException("the Hopper family runs on compute capability 9.0 only");
        }

        // The Hopper kernels take head dims 64 and 128 and blocks of 64 and 128; the portable ones the smallest case.
        var (shape, blockSize) = hopper ? (new AttentionShape(1, 256, 2, 64), 64) : (new AttentionShape(1, 128, 2, 32), 32);
        var options = Fused with { Hopper = hopper };
        var random = TestData.NewRandom($"{typeof(T).Name} fused determinism{(hopper ? " hopper" : string.Empty)}");
        var data = Enumerable.Range(0, 4).Select(_ => TestData.Values<T>(random, shape.Elements).Values).ToArray();
        var tensors = data.Select(d => DeviceTensor<T>.FromSpan(dev, d, shape.Batch, shape.Ctx, shape.Embedding)).ToArray();
        try
        {
            T[][] Run(bool recompute)
            {
                using var tape = new Tape();
                using var output = BlockSparseAttention.Compute(tensors[0], tensors[1], tensors[2], shape.Heads, AttentionPattern.Local(2 * blockSize), blockSize, options with { Recompute = recompute }, tape);
                using var grads = tape.Backward(output, tensors[3]);
                return [output.ToArray(), .. tensors.Take(3).Select(t => grads.Of(t).ToArray())];
            }

            var first = Run(recompute: false);
            var second = Run(recompute: false);
            var recomputed = Run(recompute: true);
            for (var i = 0; i < first.Length; i++)
            {
                CollectionAssert.AreEqual(first[i], second[i], $"result {i} differs between two runs");
                CollectionAssert.AreEqual(first[i], recomputed[i], $"result {i} differs with recompute");
            }
        }
        finally
        {
            Array.ForEach(tensors, t => t.Dispose());
        }
    }

    [TestMethod]
    public void UnsupportedCasesAreRejectedBeforeAnyKernelRuns()
    {
        var device = TestDevices.Get(TestDevices.Cpu);
        using var x = DeviceTensor<T>.Allocate(device, 1, 64, 48);
        var error = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseAttention.Compute(x, x, x, 1, AttentionPattern.All, 32, Fused));
        StringAssert.Contains(error.Message, "head dim 48");
        using var y = DeviceTensor<T>.Allocate(device, 1, 64, 32);
        error = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseAttention.Compute(y, y, y, 1, AttentionPattern.All, 16, Fused));
        StringAssert.Contains(error.Message, "block size 16");
        Assert.AreEqual("options", error.ParamName);
    }
}

[TestClass]
public sealed class FusedAttentionFp16Tests : FusedAttentionTests<Half>;

[TestClass]
public sealed class FusedAttentionBf16Tests : FusedAttentionTests<BFloat16>;

[TestClass]
public sealed class FusedAttentionFp32Tests
{
    [TestMethod]
    public void FloatInputsAskingForFusedAreRejected()
    {
        using var x = DeviceTensor<float>.Allocate(TestDevices.Get(TestDevices.Cpu), 1, 64, 32);
        var error = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseAttention.Compute(x, x, x, 1, AttentionPattern.All, 32, new AttentionOptions { Fused = true }));
        StringAssert.Contains(error.Message, "Half or BFloat16");
    }
}
