using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Ops;
using SparseAttention.Planning;
using SparseAttention.Reference;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>fp32 inputs with block-sparse weights stored in bf16 (the original kept its logits in bf16).</summary>
[TestClass]
public sealed class Bf16WeightsTests
{
    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void OpsWithBf16WeightsMatchTheReference(string device)
    {
        var dev = TestDevices.Get(device);
        using var c = new OpCase<float>(dev, BlockLayout.Local(64, 16, 2, 32), 1, 32, TestData.NewRandom("bf16 weights"));
        var (left, leftExact) = c.Dense();
        var (right, rightExact) = c.Dense();
        using var weights = BlockSparseOps.AllocateWeights<BFloat16>(dev, c.Plan, 1);
        weights.Fill((BFloat16)float.NaN);
        BlockSparseOps.QueryKey(left, right, c.Plan, weights);
        var expected = BlockSparseReference.QueryKey(leftExact, rightExact, c.Plan, c.Shape);
        var naive = Errors.Relative(Errors.RoundTo<BFloat16>(expected), expected);
        Errors.AssertWithin(Errors.RelativeOf(weights.ToArray(), expected), Errors.Tolerance<BFloat16>(naive), "nt into bf16 weights");

        // The products read the bf16 weights exactly, so against a reference on those values they are fp32-accurate.
        var weightsExact = Numeric.ToDouble<BFloat16>(weights.ToArray());
        var nn = c.PoisonedDense();
        BlockSparseOps.WeightValue(weights, right, c.Plan, nn);
        Errors.AssertWithin(Errors.RelativeOf(nn.ToArray(), BlockSparseReference.WeightValue(weightsExact, rightExact, c.Plan, c.Shape, false)), 1e-5, "nn from bf16 weights");
        var tn = c.PoisonedDense();
        BlockSparseOps.WeightValueTransposed(weights, right, c.Plan, tn);
        Errors.AssertWithin(Errors.RelativeOf(tn.ToArray(), BlockSparseReference.WeightValue(weightsExact, rightExact, c.Plan, c.Shape, true)), 1e-5, "tn from bf16 weights");
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void AttentionWithBf16ScoresIsNoWorseThanNaiveBf16(string device)
    {
        var dev = TestDevices.Get(device);
        var shape = new AttentionShape(1, 64, 2, 16);
        var random = TestData.NewRandom("bf16 scores");
        var data = Enumerable.Range(0, 4).Select(_ => TestData.Values<float>(random, shape.Elements)).ToArray();
        var tensors = data.Select(d => DeviceTensor<float>.FromSpan(dev, d.Values, shape.Batch, shape.Ctx, shape.Embedding)).ToArray();
        try
        {
            var pattern = AttentionPattern.All;
            using var tape = new Tape();
            using var output = BlockSparseAttention.Compute(tensors[0], tensors[1], tensors[2], shape.Heads, pattern, 16, new AttentionOptions { BFloat16Scores = true }, tape);
            using var grads = tape.Backward(output, tensors[3]);
            var mask = pattern.ToTokenMask(shape.Ctx, 16, shape.Heads);
            var s = 1 / Math.Sqrt(shape.HeadDim);
            var expected = DenseReference.Forward(data[0].Exact, data[1].Exact, data[2].Exact, shape, mask, s);
            var (dq, _, _) = DenseReference.Backward(data[0].Exact, data[1].Exact, data[2].Exact, data[3].Exact, shape, mask, s);
            var naive = NaiveAttention.Run<BFloat16>(data[0].Exact, data[1].Exact, data[2].Exact, data[3].Exact, shape, mask, s);
            Errors.AssertWithin(Errors.RelativeOf(output.ToArray(), expected), Errors.Tolerance<BFloat16>(Errors.Relative(naive.Output, expected)), "output");
            Errors.AssertWithin(Errors.RelativeOf(grads.Of(tensors[0]).ToArray(), dq), Errors.Tolerance<BFloat16>(Errors.Relative(naive.Dq, dq), gradient: true), "dq");
        }
        finally
        {
            Array.ForEach(tensors, t => t.Dispose());
        }
    }

    [TestMethod]
    public void MismatchedWeightTypesAreRejected()
    {
        var dev = TestDevices.Get(TestDevices.Cpu);
        var plan = BlockSparsePlan.For(BlockLayout.All(32, 16, 1));
        using var halfInput = DeviceTensor<Half>.Allocate(dev, 1, 32, 16);
        using var floatWeights = BlockSparseOps.AllocateWeights<float>(dev, plan, 1);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.QueryKey(halfInput, halfInput, plan, floatWeights));
        Assert.AreEqual("weights", ex.ParamName);
        using var floatInput = DeviceTensor<float>.Allocate(dev, 1, 32, 16);
        using var bf16Weights = BlockSparseOps.AllocateWeights<BFloat16>(dev, plan, 1);
        var tf32 = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.QueryKey(floatInput, floatInput, plan, bf16Weights, allowTf32: true));
        Assert.AreEqual("allowTf32", tf32.ParamName);
        var options = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseAttention.Compute(halfInput, halfInput, halfInput, 1, AttentionPattern.All, 16, new AttentionOptions { BFloat16Scores = true }));
        Assert.AreEqual("options", options.ParamName);
    }
}
