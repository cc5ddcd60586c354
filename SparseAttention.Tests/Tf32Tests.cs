using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Ops;
using SparseAttention.Reference;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>The fp32 opt-in on TF32 tensor cores: at most 5e-3 relative error (docs/numerics.md §2).</summary>
[TestClass]
public sealed class Tf32Tests
{
    private const double Tolerance = 5e-3;

    [TestMethod]
    [DataRow(TestDevices.Cpu, 16)]
    [DataRow(TestDevices.Cpu, 32)]
    [DataRow(TestDevices.Cuda, 32)]
    [DataRow(TestDevices.Cuda, 64)]
    public void MatmulsMatchTheReference(string device, int blockSize)
    {
        var layout = BlockLayout.Fixed(4 * blockSize, blockSize, 2, 2 * blockSize, 2, 1);
        using var c = new OpCase<float>(TestDevices.Get(device), layout, 1, 32, TestData.NewRandom($"tf32 block {blockSize}"));
        var (left, leftExact) = c.Dense();
        var (right, rightExact) = c.Dense();
        var (weights, weightsExact) = c.Weights();
        var sdd = c.PoisonedWeights();
        BlockSparseOps.QueryKey(left, right, c.Plan, sdd, allowTf32: true);
        Errors.AssertWithin(Errors.RelativeOf(sdd.ToArray(), BlockSparseReference.QueryKey(leftExact, rightExact, c.Plan, c.Shape)), Tolerance, "tf32 nt");
        var nn = c.PoisonedDense();
        BlockSparseOps.WeightValue(weights, right, c.Plan, nn, allowTf32: true);
        Errors.AssertWithin(Errors.RelativeOf(nn.ToArray(), BlockSparseReference.WeightValue(weightsExact, rightExact, c.Plan, c.Shape, false)), Tolerance, "tf32 nn");
        var tn = c.PoisonedDense();
        BlockSparseOps.WeightValueTransposed(weights, right, c.Plan, tn, allowTf32: true);
        Errors.AssertWithin(Errors.RelativeOf(tn.ToArray(), BlockSparseReference.WeightValue(weightsExact, rightExact, c.Plan, c.Shape, true)), Tolerance, "tf32 tn");
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void AttentionAndGradientsMatchTheReference(string device)
    {
        var dev = TestDevices.Get(device);
        var shape = new AttentionShape(1, 128, 2, 32);
        var random = TestData.NewRandom("tf32 attention");
        var data = Enumerable.Range(0, 4).Select(_ => TestData.Values<float>(random, shape.Elements)).ToArray();
        var tensors = data.Select(d => DeviceTensor<float>.FromSpan(dev, d.Values, shape.Batch, shape.Ctx, shape.Embedding)).ToArray();
        try
        {
            var pattern = AttentionPattern.Local(32);
            using var tape = new Tape();
            using var output = BlockSparseAttention.Compute(tensors[0], tensors[1], tensors[2], shape.Heads, pattern, 16, new AttentionOptions { AllowTf32 = true }, tape);
            using var grads = tape.Backward(output, tensors[3]);
            var mask = pattern.ToTokenMask(shape.Ctx, 16, shape.Heads);
            var expected = DenseReference.Forward(data[0].Exact, data[1].Exact, data[2].Exact, shape, mask);
            var (dq, dk, dv) = DenseReference.Backward(data[0].Exact, data[1].Exact, data[2].Exact, data[3].Exact, shape, mask);
            Errors.AssertWithin(Errors.RelativeOf(output.ToArray(), expected), Tolerance, "tf32 attention output");
            double[][] expectedGrads = [dq, dk, dv];
            for (var i = 0; i < 3; i++)
            {
                Errors.AssertWithin(Errors.RelativeOf(grads.Of(tensors[i]).ToArray(), expectedGrads[i]), Tolerance, $"tf32 d{"qkv"[i]}");
            }

            // TF32 is really in use: the fp32 FMA path is far more exact than TF32 truncation.
            Assert.IsGreaterThan(1e-5, Errors.RelativeOf(output.ToArray(), expected), "TF32 path ran at fp32 accuracy: was it taken?");
        }
        finally
        {
            Array.ForEach(tensors, t => t.Dispose());
        }
    }
}
