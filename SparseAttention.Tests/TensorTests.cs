using System.Numerics.Tensors;
using ILGPU.Runtime;
using SparseAttention.Ops;
using SparseAttention.Reference;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

[TestClass]
public sealed class TensorTests
{
    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void RoundTripsThroughArraysSpansAndSystemTensors(string device)
    {
        var dev = TestDevices.Get(device);
        var random = TestData.NewRandom("tensor round trip");
        var (values, _) = TestData.Values<Half>(random, 2 * 3 * 16);
        using var fromArray = DeviceTensor<Half>.FromSpan(dev, values, 2, 3, 16);
        CollectionAssert.AreEqual(values, fromArray.ToArray());
        var host = Tensor.Create(values, [2, 3, 16]);
        using var fromTensor = DeviceTensor<Half>.FromTensor(dev, host);
        CollectionAssert.AreEqual(new[] { 2, 3, 16 }, fromTensor.Shape.ToArray());
        var back = fromTensor.ToTensor();
        Assert.IsTrue(back.Lengths.SequenceEqual(host.Lengths));
        var destination = new Half[values.Length];
        fromTensor.CopyTo(destination);
        CollectionAssert.AreEqual(values, destination);
        Assert.ThrowsExactly<ArgumentException>(() => fromTensor.CopyTo(new Half[3]));
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void WrapsAnExistingBufferWithoutCopying(string device)
    {
        var dev = TestDevices.Get(device);
        using var buffer = dev.Accelerator.Allocate1D<float>(32);
        using var wrapped = DeviceTensor<float>.Wrap(dev, buffer.View, 2, 16);
        var data = Enumerable.Range(0, 32).Select(i => i * 0.5f).ToArray();
        wrapped.CopyFrom(data);
        CollectionAssert.AreEqual(data, buffer.GetAsArray1D());
        Assert.IsFalse(wrapped.OwnsBuffer);
        Assert.ThrowsExactly<ArgumentException>(() => DeviceTensor<float>.Wrap(dev, buffer.View, 3, 16));
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu, 16)]
    [DataRow(TestDevices.Cpu, 7)]
    [DataRow(TestDevices.Cuda, 16)]
    [DataRow(TestDevices.Cuda, 7)]
    public void StridedTranspositionOnTheDeviceMatchesTheHost(string device, int embedding)
    {
        // An even embedding moves 4-byte words, an odd one single elements.
        var dev = TestDevices.Get(device);
        var random = TestData.NewRandom("device transpose");
        const int batch = 2, ctx = 64, stride = 8;
        var (values, _) = TestData.Values<BFloat16>(random, batch * ctx * embedding);
        using var x = DeviceTensor<BFloat16>.FromSpan(dev, values, batch, ctx, embedding);
        using var transposed = TensorOps.StridedTranspose(x, stride);
        CollectionAssert.AreEqual(StridedTransposition.Transpose<BFloat16>(values, batch, ctx, embedding, stride), transposed.ToArray());
        using var back = TensorOps.StridedTranspose(transposed, stride, inverse: true);
        CollectionAssert.AreEqual(values, back.ToArray());
    }
}

[TestClass]
public sealed class MemoryCacheTests
{
    [TestMethod]
    public void ReleasedBuffersAreReusedAndCountedOnlyWhileInUse()
    {
        using var device = SparseAttention.Accelerators.ComputeDevice.CreateCpu();
        var first = DeviceTensor<float>.Allocate(device, 1000);
        var view = first.View;
        Assert.AreEqual(4000, device.AllocatedBytes);
        first.Dispose();
        Assert.AreEqual(0, device.AllocatedBytes);
        Assert.AreEqual(4000, device.CachedBytes);
        using var second = DeviceTensor<float>.Allocate(device, 1000);
        Assert.AreEqual(view.BaseView.LoadEffectiveAddressAsPtr(), second.View.BaseView.LoadEffectiveAddressAsPtr(), "same buffer reused");
        using var other = DeviceTensor<float>.Allocate(device, 999);
        Assert.AreEqual(0, device.CachedBytes);
        device.ReleaseCachedMemory();
    }
}
