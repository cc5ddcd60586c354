using ILGPU.Runtime;
using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Caching;
using SparseAttention.Layouts;
using SparseAttention.Planning;
using SparseAttention.Reference;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>Layouts, plans, device plans and released buffers stay within their limits over many lengths, and results stay right.</summary>
[TestClass]
public sealed class CacheLimitTests
{
    private const int Heads = 1;
    private const int HeadDim = 16;
    private const int Block = 16;

    // The CPU accelerator runs every simulated GPU thread as an OS thread (about a second per step here), so the loop
    // is short and its limits are a few plans and buffers wide: it evicts at almost every length all the same.
    [TestMethod]
    public void VariableLengthTrainingLoopStaysWithinTheLimits()
    {
        var pattern = AttentionPattern.Local(32);
        var random = TestData.NewRandom("variable-length loop");
        using var device = ComputeDevice.CreateCpu();
        device.PlanCacheBytes = 2 << 10;
        device.BufferCacheBytes = 16 << 10;
        using var limits = new StaticLimits(layouts: 2, plans: 2);

        // Up to 96 tokens, then the first length again: its layout, plan and device plan were evicted long before.
        int[] lengths = [.. Enumerable.Range(1, 6).Select(i => 16 * i), 16];
        long uploaded = 0, largestPlan = 0;
        for (var step = 0; step < lengths.Length; step++)
        {
            var ctx = lengths[step];
            var shape = new AttentionShape(1, ctx, Heads, HeadDim);
            var inputs = Enumerable.Range(0, 4).Select(_ => TestData.Values<float>(random, shape.Elements)).ToArray();
            var (q, k, v, outputGrad) = Upload(device, shape, inputs);
            using (q)
            using (k)
            using (v)
            using (outputGrad)
            using (var tape = new Tape())
            using (var output = BlockSparseAttention.Compute(q, k, v, Heads, pattern, Block, tape: tape))
            using (tape.Backward(output, outputGrad))
            {
                if (step >= lengths.Length - 2)
                {
                    var expected = DenseReference.Forward(inputs[0].Exact, inputs[1].Exact, inputs[2].Exact, shape, pattern.ToTokenMask(ctx, Block, Heads));
                    Errors.AssertWithin(Errors.RelativeOf(output.ToArray(), expected), 1e-5, $"output at ctx {ctx}");
                }
            }

            var plan = BlockSparsePlan.For(pattern.ToLayout(ctx, Block, Heads)).SizeInBytes;
            uploaded += plan;
            largestPlan = Math.Max(largestPlan, plan);
            Assert.AreEqual(device.PlanBytes, device.AllocatedBytes, $"ctx {ctx}: every tensor is disposed, so only plans are held");
            Assert.IsLessThanOrEqualTo(device.PlanCacheBytes, device.PlanBytes, $"ctx {ctx}: plan bytes");
            Assert.IsLessThanOrEqualTo(device.BufferCacheBytes, device.CachedBytes, $"ctx {ctx}: cached buffer bytes");
        }

        Console.WriteLine($"plans uploaded: {uploaded} bytes (largest {largestPlan}), kept {device.PlanBytes}; buffers kept {device.CachedBytes}");
        Assert.IsLessThan(device.PlanCacheBytes, largestPlan, "the limit holds the largest plan, so it is never exceeded");
        Assert.IsGreaterThan(device.PlanCacheBytes, uploaded, "the loop uploads more than the limit holds, so plans were evicted");
    }

    [TestMethod]
    public void PlanEvictedBetweenForwardAndBackwardGivesTheRightGradients()
    {
        var pattern = AttentionPattern.Local(32);
        var random = TestData.NewRandom("evicted plan");
        using var device = ComputeDevice.CreateCpu();
        device.PlanCacheBytes = 0;
        using var limits = new StaticLimits(layouts: 1, plans: 1);
        var shape = new AttentionShape(1, 64, Heads, HeadDim);
        var inputs = Enumerable.Range(0, 4).Select(_ => TestData.Values<float>(random, shape.Elements)).ToArray();
        var (q, k, v, outputGrad) = Upload(device, shape, inputs);
        using (q)
        using (k)
        using (v)
        using (outputGrad)
        using (var tape = new Tape())
        {
            using var output = BlockSparseAttention.Compute(q, k, v, Heads, pattern, Block, tape: tape);
            var recorded = device.Upload(BlockSparsePlan.For(pattern.ToLayout(shape.Ctx, Block, Heads)));

            // Another length in between evicts the layout, the plan and the device plan of the first.
            var other = new AttentionShape(1, 32, Heads, HeadDim);
            using (var x = DeviceTensor<float>.FromSpan(device, TestData.Values<float>(random, other.Elements).Values, 1, other.Ctx, other.Embedding))
            {
                BlockSparseAttention.Compute(x, x, x, Heads, pattern, Block).Dispose();
            }

            using var grads = tape.Backward(output, outputGrad);
            Assert.AreNotSame(recorded, device.Upload(BlockSparsePlan.For(pattern.ToLayout(shape.Ctx, Block, Heads))), "the plan was uploaded again");
            var (dq, dk, dv) = DenseReference.Backward(inputs[0].Exact, inputs[1].Exact, inputs[2].Exact, inputs[3].Exact, shape, pattern.ToTokenMask(shape.Ctx, Block, Heads));
            Errors.AssertWithin(Errors.RelativeOf(grads.Of(q).ToArray(), dq), 1e-5, "dq");
            Errors.AssertWithin(Errors.RelativeOf(grads.Of(k).ToArray(), dk), 1e-5, "dk");
            Errors.AssertWithin(Errors.RelativeOf(grads.Of(v).ToArray(), dv), 1e-5, "dv");
        }
    }

    [TestMethod]
    public void FusedBackwardAfterEvictionIsBitIdentical()
    {
        // The fused path reads the tables in its own Params: with the plan evicted between forward and backward it
        // must give exactly the gradients of an undisturbed run (its kernels sum in a fixed order).
        var random = TestData.NewRandom("fused evicted plan");
        var shape = new AttentionShape(1, 64, 1, 32);
        var inputs = Enumerable.Range(0, 4).Select(_ => TestData.Values<Half>(random, shape.Elements).Values).ToArray();
        using var device = ComputeDevice.CreateCpu();
        using var limits = new StaticLimits(layouts: 1, plans: 1);
        var undisturbed = FusedGradients(device, shape, inputs, interleave: false);
        device.PlanCacheBytes = 0;
        var evicted = FusedGradients(device, shape, inputs, interleave: true);
        for (var i = 0; i < undisturbed.Length; i++)
        {
            CollectionAssert.AreEqual(undisturbed[i], evicted[i], $"gradient {i}");
        }
    }

    [TestMethod]
    public void PinnedPlanOutlivesItsEviction()
    {
        using var device = ComputeDevice.CreateCpu();
        device.PlanCacheBytes = 0;
        var first = BlockSparsePlan.For(BlockLayout.Local(128, Block, 1, 32));
        var second = BlockSparsePlan.For(BlockLayout.Local(256, Block, 1, 32));
        long firstBytes, secondBytes;
        using (var pinned = device.Pin(first))
        {
            firstBytes = device.PlanBytes;
            secondBytes = device.Upload(second).SizeInBytes;
            Assert.AreEqual(secondBytes, device.PlanBytes, "evicted from the cache");
            Assert.AreEqual(firstBytes + secondBytes, device.AllocatedBytes, "but its tables are still on the device");
        }

        Assert.AreEqual(secondBytes, device.AllocatedBytes, "freed when the pin ends");
    }

    [TestMethod]
    public void LruCacheDropsTheLeastRecentlyUsedAndKeepsTheNewest()
    {
        var dropped = new List<string>();
        var cache = new LruCache<int, string>(3, value => value.Length, dropped.Add);
        cache.GetOrAdd(1, _ => "a");
        cache.GetOrAdd(2, _ => "b");
        cache.GetOrAdd(3, _ => "c");
        Assert.AreEqual("a", cache.GetOrAdd(1, _ => throw new AssertFailedException("1 is kept")));
        cache.GetOrAdd(4, _ => "d");
        CollectionAssert.AreEqual(new[] { "b" }, dropped, "2 was used least recently");
        cache.GetOrAdd(5, _ => "long");
        CollectionAssert.AreEqual(new[] { "b", "c", "a", "d" }, dropped, "the newest stays even when it alone is over the capacity");
        Assert.AreEqual(4, cache.Weight);
        cache.Capacity = 10;
        cache.GetOrAdd(6, _ => "e");
        Assert.AreEqual(5, cache.Weight);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => cache.Capacity = -1);
        cache.Clear();
        Assert.AreEqual(0, cache.Weight);
        CollectionAssert.AreEquivalent(new[] { "b", "c", "a", "d", "long", "e" }, dropped);
    }

    [TestMethod]
    public void BufferPoolFreesTheOldestPastItsCapacity()
    {
        using var device = ComputeDevice.CreateCpu();
        var freed = new List<MemoryBuffer>();
        var pool = new BufferPool(90, freed.AddRange);
        var a = device.Accelerator.Allocate1D<float>(10);
        var b = device.Accelerator.Allocate1D<float>(10);
        var c = device.Accelerator.Allocate1D<float>(5);
        pool.Add(typeof(float), a);
        pool.Add(typeof(float), b);
        pool.Add(typeof(float), c);
        CollectionAssert.AreEqual(new MemoryBuffer[] { a }, freed, "a was released longest ago");
        Assert.AreEqual(60, pool.Bytes);
        Assert.AreSame(b, pool.Take(typeof(float), 10));
        Assert.IsNull(pool.Take(typeof(float), 10), "nothing else of that length");
        Assert.IsNull(pool.Take(typeof(int), 5), "nor of that type");
        var large = device.Accelerator.Allocate1D<float>(30);
        pool.Add(typeof(float), large);
        CollectionAssert.AreEqual(new MemoryBuffer[] { a, c, large }, freed, "a buffer over the capacity is not kept");
        Assert.AreEqual(0, pool.Bytes);
        foreach (var buffer in new MemoryBuffer[] { a, b, c, large })
        {
            buffer.Dispose();
        }
    }

    private static T[][] FusedGradients<T>(ComputeDevice device, AttentionShape shape, T[][] inputs, bool interleave)
        where T : unmanaged
    {
        var options = new AttentionOptions { Fused = true };
        var pattern = AttentionPattern.Local(32);
        using var q = DeviceTensor<T>.FromSpan(device, inputs[0], shape.Batch, shape.Ctx, shape.Embedding);
        using var k = DeviceTensor<T>.FromSpan(device, inputs[1], shape.Batch, shape.Ctx, shape.Embedding);
        using var v = DeviceTensor<T>.FromSpan(device, inputs[2], shape.Batch, shape.Ctx, shape.Embedding);
        using var outputGrad = DeviceTensor<T>.FromSpan(device, inputs[3], shape.Batch, shape.Ctx, shape.Embedding);
        using var tape = new Tape();
        using var output = BlockSparseAttention.Compute(q, k, v, shape.Heads, pattern, 32, options, tape);
        if (interleave)
        {
            using var other = DeviceTensor<T>.FromSpan(device, [.. inputs[0], .. inputs[1]], shape.Batch, 2 * shape.Ctx, shape.Embedding);
            BlockSparseAttention.Compute(other, other, other, shape.Heads, pattern, 32, options).Dispose();
        }

        using var grads = tape.Backward(output, outputGrad);
        return [grads.Of(q).ToArray(), grads.Of(k).ToArray(), grads.Of(v).ToArray()];
    }

    private static (DeviceTensor<float> Q, DeviceTensor<float> K, DeviceTensor<float> V, DeviceTensor<float> OutputGrad) Upload(
        ComputeDevice device, AttentionShape shape, (float[] Values, double[] Exact)[] inputs)
    {
        var tensors = inputs.Select(input => DeviceTensor<float>.FromSpan(device, input.Values, shape.Batch, shape.Ctx, shape.Embedding)).ToArray();
        return (tensors[0], tensors[1], tensors[2], tensors[3]);
    }

    /// <summary>Sets the static cache capacities for one test and restores them when disposed.</summary>
    private sealed class StaticLimits : IDisposable
    {
        private readonly int previousLayouts = AttentionPattern.LayoutCacheCapacity;
        private readonly int previousPlans = BlockSparsePlan.CacheCapacity;

        public StaticLimits(int layouts, int plans)
        {
            AttentionPattern.LayoutCacheCapacity = layouts;
            BlockSparsePlan.CacheCapacity = plans;
        }

        public void Dispose()
        {
            AttentionPattern.LayoutCacheCapacity = previousLayouts;
            BlockSparsePlan.CacheCapacity = previousPlans;
        }
    }
}
