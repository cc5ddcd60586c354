using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Ops;
using SparseAttention.Planning;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>Bad input gets a clear exception on the exact call, before any kernel runs, and outputs stay untouched.</summary>
[TestClass]
public sealed class GuardTests
{
    private static ComputeDevice Device => TestDevices.Get(TestDevices.Cpu);

    [TestMethod]
    public void QueryKeyRejectsMismatchedShapesAndLeavesOutputUntouched()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 2));
        using var q = DeviceTensor<float>.Allocate(Device, 1, 64, 32);
        using var k = DeviceTensor<float>.Allocate(Device, 1, 64, 64);
        using var w = BlockSparseOps.AllocateWeights<float>(Device, plan, 1);
        w.Fill(42f);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.QueryKey(q, k, plan, w));
        Assert.AreEqual("right", ex.ParamName);
        Assert.IsTrue(w.ToArray().All(x => x == 42f), "destination untouched");
    }

    [TestMethod]
    public void HalfViewsOffTheSixteenByteGridAreRejectedBeforeAnyKernel()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 2));
        using var buffer = DeviceTensor<Half>.Allocate(Device, 1, 64 * 32 + 8);
        using var q = DeviceTensor<Half>.Allocate(Device, 1, 64, 32);
        using var shifted = DeviceTensor<Half>.Wrap(Device, buffer.View.SubView(1, 64 * 32), 1, 64, 32);
        using var w = BlockSparseOps.AllocateWeights<Half>(Device, plan, 1);
        w.Fill((Half)42f);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.QueryKey(q, shifted, plan, w));
        Assert.AreEqual("right", ex.ParamName);
        StringAssert.Contains(ex.Message, "16-byte boundary");
        Assert.IsTrue(w.ToArray().All(x => x == (Half)42f), "destination untouched");
        ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.WeightValue(w, q, plan, shifted));
        Assert.AreEqual("output", ex.ParamName);
    }

    [TestMethod]
    public void UnsupportedHeadDim()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 2));
        using var q = DeviceTensor<float>.Allocate(Device, 1, 64, 48);
        using var w = BlockSparseOps.AllocateWeights<float>(Device, plan, 1);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.QueryKey(q, q, plan, w));
        Assert.AreEqual("headDim", ex.ParamName);
        StringAssert.Contains(ex.Message, "headDim 24 is not supported");
    }

    [TestMethod]
    public void CtxNotAMultipleOfBlockSize()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 1));
        using var q = DeviceTensor<float>.Allocate(Device, 1, 60, 16);
        using var w = BlockSparseOps.AllocateWeights<float>(Device, plan, 1);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.QueryKey(q, q, plan, w));
        StringAssert.Contains(ex.Message, "ctx 60 is not a multiple of blockSize 16");
    }

    [TestMethod]
    public void CtxDifferentFromThePlan()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 1));
        using var q = DeviceTensor<float>.Allocate(Device, 1, 128, 16);
        using var w = BlockSparseOps.AllocateWeights<float>(Device, plan, 1);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.QueryKey(q, q, plan, w));
        Assert.AreEqual("left", ex.ParamName);
    }

    [TestMethod]
    public void WeightsOfTheWrongShape()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 1));
        using var q = DeviceTensor<float>.Allocate(Device, 1, 64, 16);
        using var w = DeviceTensor<float>.Allocate(Device, 1, 1, 9, 16, 16);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.WeightValue(w, q, plan, q));
        Assert.AreEqual("weights", ex.ParamName);
    }

    [TestMethod]
    public void TensorsOnAnotherDevice()
    {
        using var other = ComputeDevice.CreateCpu();
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 1));
        using var q = DeviceTensor<float>.Allocate(Device, 1, 64, 16);
        using var k = DeviceTensor<float>.Allocate(other, 1, 64, 16);
        using var w = BlockSparseOps.AllocateWeights<float>(Device, plan, 1);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.QueryKey(q, k, plan, w));
        Assert.AreEqual("right", ex.ParamName);
        StringAssert.Contains(ex.Message, "must share a device");
        var attention = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseAttention.Compute(q, q, k, 1, AttentionPattern.All, 16));
        Assert.AreEqual("v", attention.ParamName);
    }

    [TestMethod]
    public void SoftmaxAutoregressAtKeyOutOfRange()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 1));
        using var w = BlockSparseOps.AllocateWeights<float>(Device, plan, 1);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => BlockSparseOps.Softmax(w, plan, w, 1f, true, 64));
        Assert.AreEqual("autoregressAtKey", ex.ParamName);
    }

    [TestMethod]
    public void AttentionRejectsHeadsThatDoNotDivideTheEmbedding()
    {
        using var q = DeviceTensor<float>.Allocate(Device, 1, 64, 48);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseAttention.Compute(q, q, q, 5, AttentionPattern.All, 16));
        Assert.AreEqual("embedding", ex.ParamName);
        StringAssert.Contains(ex.Message, "embedding 48 is not a multiple of heads 5");
    }

    [TestMethod]
    public void AttentionRejectsMismatchedShapes()
    {
        using var q = DeviceTensor<float>.Allocate(Device, 1, 64, 32);
        using var k = DeviceTensor<float>.Allocate(Device, 2, 64, 32);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseAttention.Compute(q, k, q, 2, AttentionPattern.All, 16));
        Assert.AreEqual("k", ex.ParamName);
    }

    [TestMethod]
    public void AttentionRejectsAutoregressAtKeyOutOfRangeBeforeRunning()
    {
        using var q = DeviceTensor<float>.Allocate(Device, 1, 64, 16);
        var options = new AttentionOptions { AutoregressAtKey = 64 };
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => BlockSparseAttention.Compute(q, q, q, 1, AttentionPattern.Strided(4), 16, options));
    }

    [TestMethod]
    [DataRow(0.0)]
    [DataRow(-0.125)]
    [DataRow(double.NaN)]
    [DataRow(double.PositiveInfinity)]
    [DataRow(1e300)]
    [DataRow(3e38)]
    [DataRow(1e-50)]
    public void AttentionRejectsAScaleThatIsNotPositiveAndFiniteBeforeRunning(double scale)
    {
        using var q = DeviceTensor<float>.Allocate(Device, 1, 64, 16);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => BlockSparseAttention.Compute(q, q, q, 1, AttentionPattern.All, 16, new AttentionOptions { Scale = scale }));
        Assert.AreEqual("options", ex.ParamName);
        StringAssert.Contains(ex.Message, "must be positive and finite");
    }

    [TestMethod]
    public void BackwardTwiceAndWrongGradientShape()
    {
        var random = TestData.NewRandom("backward guards");
        var (values, _) = TestData.Values<float>(random, 64 * 16);
        using var q = DeviceTensor<float>.FromSpan(Device, values, 1, 64, 16);
        using var wrong = DeviceTensor<float>.Allocate(Device, 1, 64, 32);
        using var tape = new Tape();
        using var output = BlockSparseAttention.Compute(q, q, q, 1, AttentionPattern.All, 16, tape: tape);
        var shape = Assert.ThrowsExactly<ArgumentException>(() => tape.Backward(output, wrong));
        Assert.AreEqual("outputGrad", shape.ParamName);
        var notRecorded = Assert.ThrowsExactly<ArgumentException>(() => tape.Backward(q, q));
        Assert.AreEqual("output", notRecorded.ParamName);
        using (tape.Backward(output, q))
        {
        }

        Assert.ThrowsExactly<InvalidOperationException>(() => tape.Backward(output, q));
    }

    [TestMethod]
    public void SoftmaxGradRejectsMismatchedGradientsAndLeavesOutputUntouched()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 2));
        var other = BlockSparsePlan.For(BlockLayout.Local(64, 16, 2, 16));
        using var probabilities = BlockSparseOps.AllocateWeights<float>(Device, plan, 1);
        using var wrong = BlockSparseOps.AllocateWeights<float>(Device, other, 1);
        using var inputGrad = BlockSparseOps.AllocateWeights<float>(Device, plan, 1);
        inputGrad.Fill(42f);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.SoftmaxGrad(probabilities, wrong, plan, inputGrad, 1f));
        Assert.AreEqual("outputGrad", ex.ParamName);
        StringAssert.Contains(ex.Message, "but the plan needs");
        ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.SoftmaxGrad(probabilities, probabilities, plan, wrong, 1f));
        Assert.AreEqual("inputGrad", ex.ParamName);
        using var rank4 = DeviceTensor<float>.Allocate(Device, 1, 2, 10, 256);
        ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.SoftmaxGrad(rank4, probabilities, plan, inputGrad, 1f));
        Assert.AreEqual("probabilities", ex.ParamName);
        StringAssert.Contains(ex.Message, "must be [batch, heads, blocks, block, block]");
        Assert.IsTrue(inputGrad.ToArray().All(x => x == 42f), "destination untouched");
    }

    [TestMethod]
    public void TransposedWeightValueRejectsMismatchedTensorsAndLeavesOutputUntouched()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(64, 16, 2));
        using var weights = BlockSparseOps.AllocateWeights<float>(Device, plan, 1);
        using var dense = DeviceTensor<float>.Allocate(Device, 1, 64, 32);
        using var output = DeviceTensor<float>.Allocate(Device, 1, 64, 32);
        using var wide = DeviceTensor<float>.Allocate(Device, 1, 64, 64);
        using var twoSequences = BlockSparseOps.AllocateWeights<float>(Device, plan, 2);
        output.Fill(42f);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.WeightValueTransposed(weights, dense, plan, wide));
        Assert.AreEqual("output", ex.ParamName);
        StringAssert.Contains(ex.Message, "output has shape [1, 64, 64] but dense has [1, 64, 32]");
        ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.WeightValueTransposed(twoSequences, dense, plan, output));
        Assert.AreEqual("weights", ex.ParamName);
        using var halfWeights = BlockSparseOps.AllocateWeights<Half>(Device, plan, 1);
        ex = Assert.ThrowsExactly<ArgumentException>(() => BlockSparseOps.WeightValueTransposed(halfWeights, dense, plan, output));
        Assert.AreEqual("weights", ex.ParamName);
        StringAssert.Contains(ex.Message, "weights of Half do not fit inputs of Single");
        Assert.IsTrue(output.ToArray().All(x => x == 42f), "destination untouched");
    }

    [TestMethod]
    public void StridedTransposeRejectsBadRankStrideAndCtx()
    {
        using var input = DeviceTensor<float>.Allocate(Device, 1, 60, 16);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => TensorOps.StridedTranspose(input, 8));
        Assert.AreEqual("ctx", ex.ParamName);
        StringAssert.Contains(ex.Message, "ctx 60 is not a multiple of stride 8");
        var range = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TensorOps.StridedTranspose(input, 0));
        Assert.AreEqual("stride", range.ParamName);
        StringAssert.Contains(range.Message, "stride 0 must be positive");
        using var flat = DeviceTensor<float>.Allocate(Device, 60, 16);
        ex = Assert.ThrowsExactly<ArgumentException>(() => TensorOps.StridedTranspose(flat, 4));
        Assert.AreEqual("input", ex.ParamName);
        StringAssert.Contains(ex.Message, "not rank 2");
    }

    [TestMethod]
    public void AddInPlaceRejectsMismatchedShapesAndDevicesAndLeavesAccumulatorUntouched()
    {
        using var other = ComputeDevice.CreateCpu();
        using var accumulator = DeviceTensor<float>.Allocate(Device, 2, 8);
        using var transposed = DeviceTensor<float>.Allocate(Device, 8, 2);
        using var elsewhere = DeviceTensor<float>.Allocate(other, 2, 8);
        accumulator.Fill(42f);
        transposed.Fill(1f);
        elsewhere.Fill(1f);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => TensorOps.AddInPlace(accumulator, transposed));
        Assert.AreEqual("addend", ex.ParamName);
        StringAssert.Contains(ex.Message, "addend has shape [8, 2] but accumulator has [2, 8]");
        ex = Assert.ThrowsExactly<ArgumentException>(() => TensorOps.AddInPlace(accumulator, elsewhere));
        Assert.AreEqual("addend", ex.ParamName);
        StringAssert.Contains(ex.Message, "must share a device");
        Assert.ThrowsExactly<ArgumentNullException>(() => TensorOps.AddInPlace(accumulator, null!));
        Assert.IsTrue(accumulator.ToArray().All(x => x == 42f), "accumulator untouched");
    }

    [TestMethod]
    public void DisposedDeviceThrowsObjectDisposed()
    {
        var device = ComputeDevice.CreateCpu();
        device.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => device.Accelerator);
        Assert.ThrowsExactly<ObjectDisposedException>(() => DeviceTensor<float>.Allocate(device, 4));
        device.Dispose();
    }
}
