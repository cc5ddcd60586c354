using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>The fused kernels (forward, dQ, dK/dV) against the float64 dense reference, on every accelerator present.</summary>
public abstract class FusedAttentionTests<T>
    where T : unmanaged
{
    private static readonly AttentionOptions Fused = new() { Fused = true };

    [TestMethod]
    [DataRow(TestDevices.Cpu, "all")]
    [DataRow(TestDevices.Cpu, "local")]
    [DataRow(TestDevices.Cpu, "strided")]
    [DataRow(TestDevices.Cpu, "fixed")]
    [DataRow(TestDevices.Cuda, "all")]
    [DataRow(TestDevices.Cuda, "local")]
    [DataRow(TestDevices.Cuda, "strided")]
    [DataRow(TestDevices.Cuda, "fixed")]
    public void EveryPatternMatchesReference(string device, string mode)
    {
        // CPU: small, since the CPU accelerator emulates each mma. CUDA: the benchmark's patterns at ctx 2048 (the
        // float64 reference on the host is what takes the time).
        var cpu = device == TestDevices.Cpu;
        var shape = cpu ? new AttentionShape(1, 128, 2, 32) : new AttentionShape(1, 2048, 4, 64);
        var (pattern, blockSize) = mode switch
        {
            "all" => (AttentionPattern.All, cpu ? 32 : 64),
            "local" => (AttentionPattern.Local(cpu ? 64 : 256), cpu ? 32 : 64),
            "strided" => (AttentionPattern.Strided(cpu ? 4 : 64), 32),
            _ => (cpu ? AttentionPattern.Fixed(64, 2, 1) : AttentionPattern.Fixed(128, 4, 1), 32),
        };
        var mask = pattern.ToTokenMask(shape.Ctx, blockSize, shape.Heads);
        AttentionCheck.AgainstReference<T>(device, shape, mask, (q, k, v, tape) => BlockSparseAttention.Compute(q, k, v, shape.Heads, pattern, blockSize, Fused, tape), $"fused {pattern}");
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu, 64, 64)]
    [DataRow(TestDevices.Cpu, 128, 128)]
    [DataRow(TestDevices.Cuda, 32, 32)]
    [DataRow(TestDevices.Cuda, 32, 64)]
    [DataRow(TestDevices.Cuda, 32, 128)]
    [DataRow(TestDevices.Cuda, 64, 32)]
    [DataRow(TestDevices.Cuda, 64, 128)]
    [DataRow(TestDevices.Cuda, 128, 32)]
    [DataRow(TestDevices.Cuda, 128, 64)]
    [DataRow(TestDevices.Cuda, 128, 128)]
    public void EveryHeadDimAndBlockSizeMatchesReference(string device, int headDim, int blockSize)
    {
        // Two block rows on the CPU; on CUDA two sequences and three heads at ctx 1024.
        var shape = device == TestDevices.Cpu ? new AttentionShape(1, 2 * blockSize, 1, headDim) : new AttentionShape(2, 1024, 3, headDim);
        var mask = AttentionPattern.All.ToTokenMask(shape.Ctx, blockSize, shape.Heads);
        AttentionCheck.AgainstReference<T>(device, shape, mask, (q, k, v, tape) => BlockSparseAttention.Compute(q, k, v, shape.Heads, AttentionPattern.All, blockSize, Fused, tape), $"fused head dim {headDim} block {blockSize}");
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void DenseWithTokenMaskMatchesReference(string device)
    {
        // Dense attention plans 64-token blocks for the fused kernels; the token mask empties whole tiles above the diagonal.
        var shape = new AttentionShape(1, 128, 2, 32);
        TokenMask mask = (h, q, k) => k <= q && (q - k + h) % 3 != 1;
        AttentionCheck.AgainstReference<T>(device, shape, mask, (q, k, v, tape) => BlockSparseAttention.Dense(q, k, v, shape.Heads, mask, Fused, tape), "fused dense");
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void EmptyRowsAndColumnsGiveZerosAndZeroGradients(string device)
    {
        // Bidirectional layout, an element predicate per head, with an empty block row (1) and column (2); autoregressAtKey trims the future.
        var shape = new AttentionShape(2, 128, 2, 32);
        var blocks = new bool[4, 4];
        for (var i = 0; i < 4; i++)
        {
            for (var j = 0; j < 4; j++)
            {
                blocks[i, j] = i != 1 && j != 2;
            }
        }

        var layout = BlockLayout.Custom(blocks, 32, shape.Heads, (h, q, k) => (q + 3 * k + h) % 7 != 0);
        var options = Fused with { AutoregressAtKey = 40 };
        var mask = ((TokenMask)layout.IsAllowed).AutoregressAtKey(40, shape.Ctx);
        var (output, grads) = AttentionCheck.AgainstReference<T>(device, shape, mask, (q, k, v, tape) => BlockSparseAttention.Compute(q, k, v, layout, options, tape), "fused empty rows");
        for (var n = 0; n < shape.Batch; n++)
        {
            for (var t = 0; t < 32; t++)
            {
                for (var c = 0; c < shape.Embedding; c++)
                {
                    var row = (n * shape.Ctx + 32 + t) * shape.Embedding + c;
                    var column = (n * shape.Ctx + 64 + t) * shape.Embedding + c;
                    Assert.AreEqual(0.0, output[row], "output of an empty row");
                    Assert.AreEqual(0.0, grads[0][row], "dq of an empty row");
                    Assert.AreEqual(0.0, grads[1][column], "dk of an empty column");
                    Assert.AreEqual(0.0, grads[2][column], "dv of an empty column");
                }
            }
        }
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void BackwardIsDeterministicAndRecomputeBitIdentical(string device)
    {
        var dev = TestDevices.Get(device);
        var shape = new AttentionShape(1, 128, 2, 32);
        var random = TestData.NewRandom($"{typeof(T).Name} fused determinism");
        var data = Enumerable.Range(0, 4).Select(_ => TestData.Values<T>(random, shape.Elements).Values).ToArray();
        var tensors = data.Select(d => DeviceTensor<T>.FromSpan(dev, d, shape.Batch, shape.Ctx, shape.Embedding)).ToArray();
        try
        {
            T[][] Run(bool recompute)
            {
                using var tape = new Tape();
                using var output = BlockSparseAttention.Compute(tensors[0], tensors[1], tensors[2], shape.Heads, AttentionPattern.Local(64), 32, Fused with { Recompute = recompute }, tape);
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
