using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Reference;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>Block-sparse and device-dense attention, forward and backward, against the float64 dense reference.</summary>
public abstract class AttentionTests<T>
    where T : unmanaged
{
    [TestMethod]
    [DataRow(TestDevices.Cpu, "all")]
    [DataRow(TestDevices.Cpu, "local")]
    [DataRow(TestDevices.Cpu, "strided")]
    [DataRow(TestDevices.Cpu, "fixed")]
    [DataRow(TestDevices.Cuda, "all")]
    [DataRow(TestDevices.Cuda, "local")]
    [DataRow(TestDevices.Cuda, "strided")]
    [DataRow(TestDevices.Cuda, "fixed")]
    public void BlockSparseMatchesDenseReferenceForwardAndBackward(string device, string mode)
    {
        // CPU: a reduced example that keeps CI fast. CUDA: the original's example, batch 4, ctx 1024, embd 256, heads 4, block 32.
        var cpu = device == TestDevices.Cpu;
        var shape = cpu ? new AttentionShape(2, 128, 4, 16) : new AttentionShape(4, 1024, 4, 64);
        var blockSize = cpu ? 16 : 32;
        var pattern = mode switch
        {
            "all" => AttentionPattern.All,
            "local" => AttentionPattern.Local(32),
            "strided" => AttentionPattern.Strided(cpu ? 8 : 32),
            _ => cpu ? AttentionPattern.Fixed(32, 2, 1) : AttentionPattern.Fixed(128, 4, 1),
        };
        var mask = pattern.ToTokenMask(shape.Ctx, blockSize, shape.Heads);
        AttentionCheck.AgainstReference<T>(device, shape, mask, (q, k, v, tape) => BlockSparseAttention.Compute(q, k, v, shape.Heads, pattern, blockSize, tape: tape), pattern.ToString());
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void DenseOnDeviceMatchesReferenceWithAutoregressAtKey(string device)
    {
        var shape = new AttentionShape(1, 64, 2, 16);
        TokenMask bidirectional = (h, q, k) => (q + 2 * k + h) % 5 != 0;
        var options = new AttentionOptions { AutoregressAtKey = 24, Scale = 0.3 };
        AttentionCheck.AgainstReference<T>(device, shape, bidirectional.AutoregressAtKey(24, shape.Ctx),
            (q, k, v, tape) => BlockSparseAttention.Dense(q, k, v, shape.Heads, bidirectional, options, tape), "dense autoregress", 0.3);
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void EmptyBlockRowAndAutoregressGiveZerosNotNaN(string device)
    {
        // Bidirectional custom layout; block row 1 is empty, autoregressAtKey 8 empties nothing else but trims the future.
        var shape = new AttentionShape(2, 48, 2, 16);
        var blocks = new bool[,] { { true, true, true }, { false, false, false }, { true, false, true } };
        var layout = BlockLayout.Custom(blocks, 16, shape.Heads);
        var options = new AttentionOptions { AutoregressAtKey = 8 };
        var mask = ((TokenMask)layout.IsAllowed).AutoregressAtKey(8, shape.Ctx);
        var (output, grads) = AttentionCheck.AgainstReference<T>(device, shape, mask, (q, k, v, tape) => BlockSparseAttention.Compute(q, k, v, layout, options, tape), "empty row");
        for (var n = 0; n < shape.Batch; n++)
        {
            for (var t = 16; t < 32; t++)
            {
                for (var c = 0; c < shape.Embedding; c++)
                {
                    var index = (n * shape.Ctx + t) * shape.Embedding + c;
                    Assert.AreEqual(0.0, output[index], "output of an empty row");
                    Assert.AreEqual(0.0, grads[0][index], "dq of an empty row");
                }
            }
        }
    }

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

        // A first call uploads the plan, which stays on the device for its lifetime.
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
