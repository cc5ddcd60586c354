using SparseAttention.Accelerators;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Reference;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>
/// The recompute scheduler on the CPU accelerator: a stack of layers (block-sparse attention, a user linear op, a
/// residual add) trained for one step under every policy gives the same bits, and stays within its budget.
/// </summary>
[TestClass]
public sealed class RecomputeSchedulerTests
{
    // ctx 64: on the CPU accelerator a step's time grows with ctx, and the schedule's shape does not need more.
    private static readonly AttentionShape Shape = new(1, 64, 2, 16);
    private static readonly AttentionPattern Pattern = AttentionPattern.Fixed(32, 2, 1);
    private const int Layers = 2;

    [TestMethod]
    public void EveryPolicyGivesBitIdenticalGradientsAndABudgetLowersTheMeasuredPeak()
    {
        var stack = new LayerStack<float>(TestDevices.Get(TestDevices.Cpu), Shape, Layers, Pattern, TestData.NewRandom("policies"));
        var (expected, keepAll, keepAllMeasured) = stack.Step(TapePolicy.KeepAll, checkpoint: true);
        CheckAgainstFloat64(stack, expected, Pattern);
        var (recomputed, recomputeAll, _) = stack.Step(TapePolicy.RecomputeAll, checkpoint: true);
        AssertSame(expected, recomputed, "RecomputeAll");
        var (rooted, squareRoot, _) = stack.Step(TapePolicy.SquareRoot, checkpoint: true);
        Console.WriteLine(squareRoot);
        AssertSame(expected, rooted, "SquareRoot");

        // A budget strictly between what recomputing everything and keeping everything need.
        Assert.IsLessThan(keepAll.ExpectedPeakBytes, recomputeAll.ExpectedPeakBytes, $"recompute-all should need less than keep-all\n{recomputeAll}");
        var budget = (keepAll.ExpectedPeakBytes + recomputeAll.ExpectedPeakBytes) / 2;
        var (budgeted, schedule, measured) = stack.Step(TapePolicy.Budget(budget), checkpoint: true);
        AssertSame(expected, budgeted, schedule.Policy.ToString());
        AssertWithinBudget(budget, schedule, measured, keepAll, keepAllMeasured);
    }

    [TestMethod]
    public void OpsWithoutSegmentsGiveTheSameBitsUnderRecomputeAllAndABudget()
    {
        var stack = new LayerStack<float>(TestDevices.Get(TestDevices.Cpu), Shape, Layers, Pattern, TestData.NewRandom("ops"));
        var (expected, keepAll, keepAllMeasured) = stack.Step(TapePolicy.KeepAll, checkpoint: false);
        var (recomputed, recomputeAll, _) = stack.Step(TapePolicy.RecomputeAll, checkpoint: false);
        Console.WriteLine(recomputeAll);
        AssertSame(expected, recomputed, "RecomputeAll");
        Assert.AreEqual(keepAll.ExpectedPeakBytes, recomputeAll.KeepAllPeakBytes, "the same ops, the same keep-all peak");
        Assert.IsLessThan(keepAll.ExpectedPeakBytes, recomputeAll.ExpectedPeakBytes, "recompute-all should need less than keep-all");
        var budget = (keepAll.ExpectedPeakBytes + recomputeAll.ExpectedPeakBytes) / 2;
        var (budgeted, schedule, measured) = stack.Step(TapePolicy.Budget(budget), checkpoint: false);
        AssertSame(expected, budgeted, schedule.Policy.ToString());
        AssertWithinBudget(budget, schedule, measured, keepAll, keepAllMeasured);
    }

    [TestMethod]
    public void BudgetsDownToRecomputeAllsPeakAreMetWithFewerFlops()
    {
        var device = TestDevices.Get(TestDevices.Cpu);
        var random = TestData.NewRandom("host budgets");
        var input = TestData.Values<float>(random, Shape.Elements).Values;
        var seed = TestData.Values<float>(random, Shape.Elements).Values;
        var weights = Enumerable.Range(0, 6).Select(_ => TestData.Values<float>(random, (long)Shape.Embedding * Shape.Embedding, 0.2).Values).ToArray();
        var (expected, keepAll) = HostStep(device, input, seed, weights, TapePolicy.KeepAll);
        var (recomputed, recomputeAll) = HostStep(device, input, seed, weights, TapePolicy.RecomputeAll);
        AssertSame(expected, recomputed, "RecomputeAll");
        Assert.IsLessThan(keepAll.ExpectedPeakBytes, recomputeAll.ExpectedPeakBytes, $"recompute-all should need less than keep-all\n{recomputeAll}");
        foreach (var budget in new[] { (keepAll.ExpectedPeakBytes + recomputeAll.ExpectedPeakBytes) / 2, recomputeAll.ExpectedPeakBytes })
        {
            var (results, schedule) = HostStep(device, input, seed, weights, TapePolicy.Budget(budget));
            Console.WriteLine(schedule);
            AssertSame(expected, results, schedule.Policy.ToString());
            Assert.IsLessThanOrEqualTo(budget, schedule.ExpectedPeakBytes, $"expected peak over budget {budget}");
            Assert.IsLessThanOrEqualTo(recomputeAll.FlopsAdded, schedule.FlopsAdded, "a budget recomputes no more than recompute-all");
        }
    }

    [TestMethod]
    public void InfeasibleBudgetIsRejectedBeforeAnyBackwardKernelNamingOneThatIsMet()
    {
        var device = TestDevices.Get(TestDevices.Cpu);
        var random = TestData.NewRandom("infeasible");
        using var x = DeviceTensor<float>.FromSpan(device, TestData.Values<float>(random, Shape.Elements).Values, Shape.Batch, Shape.Ctx, Shape.Embedding);
        using var w = DeviceTensor<float>.FromSpan(device, TestData.Values<float>(random, (long)Shape.Embedding * Shape.Embedding).Values, Shape.Embedding, Shape.Embedding);
        long Run(TapePolicy policy)
        {
            using var tape = new Tape(policy);
            using var h = tape.Checkpoint(x, (t, input) => HostOps.Linear(t, input, w));
            using var y = tape.Checkpoint(h, (t, input) => HostOps.Linear(t, input, w));
            using var grads = tape.Backward(y, x);
            return h.SizeInBytes;
        }

        var runs = HostOps.BackwardRuns;
        var ex = Assert.ThrowsExactly<ArgumentException>(() => Run(TapePolicy.Budget(1)));
        Console.WriteLine(ex.Message);
        Assert.AreEqual("policy", ex.ParamName);
        Assert.AreEqual(runs, HostOps.BackwardRuns, "no backward ran");

        // The second segment keeps h, which nothing can free: the smallest budget is its size, and it is met.
        var size = Run(TapePolicy.KeepAll);
        StringAssert.Contains(ex.Message, $"smallest budget the scheduler meets for this step is {size:N0} bytes");
        Run(TapePolicy.Budget(size));
    }

    [TestMethod]
    public void TensorUsedTwiceSumsItsGradientsAndTensorsThatNeedNoneGetNone()
    {
        var device = TestDevices.Get(TestDevices.Cpu);
        var random = TestData.NewRandom("used twice");
        var values = TestData.Values<float>(random, 64).Values;
        var seed = TestData.Values<float>(random, 64).Values;
        using var x = DeviceTensor<float>.FromSpan(device, values, 8, 8);
        using var data = DeviceTensor<float>.FromSpan(device, values, 8, 8);
        using var grad = DeviceTensor<float>.FromSpan(device, seed, 8, 8);
        data.RequiresGrad = false;
        using var tape = new Tape();
        using var twice = HostOps.Add(tape, x, x);
        using var constant = HostOps.Add(tape, data, data);
        using var y = HostOps.Add(tape, twice, constant);
        var runs = HostOps.BackwardRuns;
        using var grads = tape.Backward(y, grad);
        CollectionAssert.AreEqual(seed.Select(g => g + g).ToArray(), grads.Of(x).ToArray(), "x was used twice: its gradient is the sum");
        Assert.IsFalse(grads.Contains(data), "data requires no gradient");
        Assert.IsFalse(grads.Contains(constant), "constant depends on nothing that requires a gradient");
        Assert.AreEqual(runs + 2, HostOps.BackwardRuns, "the op on data alone did not run its backward");
    }

    [TestMethod]
    public void Fp16AttentionBetweenFp32UserOpsOnOneTape()
    {
        var seed = TestData.NewRandom("fp16 between fp32").Next();
        var device = TestDevices.Get(TestDevices.Cpu);
        var stack = new LayerStack<Half>(device, Shape, Layers, AttentionPattern.Local(32), new Random(seed));
        var (expected, _, _) = stack.Step(TapePolicy.KeepAll, checkpoint: false);
        var (results, schedule, _) = stack.Step(TapePolicy.RecomputeAll, checkpoint: true);
        Console.WriteLine(schedule);
        AssertSame(expected, results, "RecomputeAll");

        // The same inputs all in fp32: the fp16 attention only rounds.
        var (wide, _, _) = new LayerStack<float>(device, Shape, Layers, AttentionPattern.Local(32), new Random(seed)).Step(TapePolicy.KeepAll, checkpoint: false);
        for (var i = 0; i < expected.Length; i++)
        {
            Errors.AssertWithin(Errors.RelativeOf(expected[i], Numeric.ToDouble<float>(wide[i])), 1e-2, $"fp16 attention against fp32, result {i}");
        }
    }

    [TestMethod]
    public void BadArgumentsThrowBeforeAnythingRuns()
    {
        var device = TestDevices.Get(TestDevices.Cpu);
        using var x = DeviceTensor<float>.Allocate(device, 4, 4);
        using var tape = new Tape();
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TapePolicy.Budget(-1));
        var nullInput = Assert.ThrowsExactly<ArgumentException>(() => tape.Apply<float>([x, null!], _ => throw new AssertFailedException("forward ran"), (_, _) => []));
        Assert.AreEqual("inputs", nullInput.ParamName);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tape.Apply<float>([x], _ => throw new AssertFailedException("forward ran"), (_, _) => [], flops: -1));
        Assert.ThrowsExactly<InvalidOperationException>(() => tape.Checkpoint(_ => x));
        Assert.ThrowsExactly<InvalidOperationException>(() => tape.Apply([x], _ => x, (_, g) => [g]));
        using var wrong = tape.Apply([x], _ => DeviceTensor<float>.Allocate(device, 4, 4), (_, _) => [DeviceTensor<float>.Allocate(device, 2, 2)], name: "wrong shape");
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => tape.Backward(wrong, x));
        StringAssert.Contains(ex.Message, "wrong shape");
    }

    // The budget covers what the tape keeps; the device also holds the working set of the op running (gradients in
    // flight, a backward's temporaries), which keeping everything shows: its measured peak less what the tape keeps.
    private static void AssertWithinBudget(long budget, ScheduleReport schedule, long measured, ScheduleReport keepAll, long keepAllMeasured)
    {
        var workspace = keepAllMeasured - keepAll.ExpectedPeakBytes;
        Console.WriteLine($"keep-all: measured {keepAllMeasured:N0} bytes, the tape keeps {keepAll.ExpectedPeakBytes:N0}\nbudget {budget:N0}: measured {measured:N0} bytes\n{schedule}");
        Assert.IsLessThanOrEqualTo(budget, schedule.ExpectedPeakBytes, $"expected peak over budget {budget}");
        Assert.IsLessThanOrEqualTo(budget + workspace, measured, $"measured peak over budget {budget} plus the workspace {workspace}");
        Assert.IsLessThan(keepAllMeasured, measured, "a budget below keep-all's peak should lower the measured peak");
    }

    // One step of a stack of host-only segments x + w2 · (w1 · x): the inner product is what a segment can drop.
    private static (float[][] Results, ScheduleReport Schedule) HostStep(ComputeDevice device, float[] input, float[] seed, float[][] weights, TapePolicy policy)
    {
        using var x = DeviceTensor<float>.FromSpan(device, input, Shape.Batch, Shape.Ctx, Shape.Embedding);
        using var grad = DeviceTensor<float>.FromSpan(device, seed, Shape.Batch, Shape.Ctx, Shape.Embedding);
        var w = weights.Select(data => DeviceTensor<float>.FromSpan(device, data, Shape.Embedding, Shape.Embedding)).ToArray();
        using var tape = new Tape(policy);
        var current = x;
        for (var layer = 0; layer < w.Length; layer += 2)
        {
            var (first, second) = (w[layer], w[layer + 1]);
            var next = tape.Checkpoint(current, (t, h) =>
            {
                using var inner = HostOps.Linear(t, h, first);
                using var outer = HostOps.Linear(t, inner, second);
                return HostOps.Add(t, h, outer);
            });
            if (current != x)
            {
                current.Dispose();
            }

            current = next;
        }

        var schedule = tape.Schedule;
        using var grads = tape.Backward(current, grad);
        float[][] results = [current.ToArray(), grads.Of(x).ToArray(), .. w.Select(weight => grads.Of(weight).ToArray())];
        current.Dispose();
        Array.ForEach(w, t => t.Dispose());
        return (results, schedule);
    }

    private static void AssertSame(float[][] expected, float[][] actual, string what)
    {
        for (var i = 0; i < expected.Length; i++)
        {
            CollectionAssert.AreEqual(expected[i], actual[i], $"{what}: result {i} differs from keep-all");
        }
    }

    // Keep-all's gradients against the same stack in float64: DenseReference for the attention, exact sums for the rest.
    private static void CheckAgainstFloat64(LayerStack<float> stack, float[][] results, AttentionPattern pattern)
    {
        var mask = pattern.ToTokenMask(Shape.Ctx, 16, Shape.Heads);
        var e = Shape.Embedding;
        var rows = (int)(Shape.Elements / e);
        double[] Wide(float[] a) => Array.ConvertAll(a, v => (double)v);
        double[] MatMul(double[] a, double[] b, int m, int k, int n, bool ta, bool tb)
        {
            var c = new double[m * n];
            for (var i = 0; i < m; i++)
            {
                for (var j = 0; j < n; j++)
                {
                    for (var p = 0; p < k; p++)
                    {
                        c[(i * n) + j] += a[ta ? (p * m) + i : (i * k) + p] * b[tb ? (j * k) + p : (p * n) + j];
                    }
                }
            }

            return c;
        }

        var w = stack.Weights.Select(Wide).ToArray();
        var xs = new List<double[]> { Wide(stack.Input) };
        var attended = new List<double[]>();
        for (var layer = 0; layer < w.Length; layer++)
        {
            var x = xs[^1];
            attended.Add(DenseReference.Forward(x, x, x, Shape, mask));
            var projected = MatMul(attended[^1], w[layer], rows, e, e, false, false);
            xs.Add([.. x.Zip(projected, (a, b) => a + b)]);
        }

        var g = Wide(stack.OutputGrad);
        var weightGrads = new double[w.Length][];
        for (var layer = w.Length - 1; layer >= 0; layer--)
        {
            var x = xs[layer];
            weightGrads[layer] = MatMul(attended[layer], g, e, rows, e, true, false);
            var dAttended = MatMul(g, w[layer], rows, e, e, false, true);
            var (dq, dk, dv) = DenseReference.Backward(x, x, x, dAttended, Shape, mask);
            g = [.. g.Select((v, i) => v + dq[i] + dk[i] + dv[i])];
        }

        Errors.AssertWithin(Errors.RelativeOf(results[0], xs[^1]), 1e-5, "output");
        Errors.AssertWithin(Errors.RelativeOf(results[1], g), 1e-5, "d input");
        for (var layer = 0; layer < w.Length; layer++)
        {
            Errors.AssertWithin(Errors.RelativeOf(results[2 + layer], weightGrads[layer]), 1e-5, $"d weight {layer}");
        }
    }
}
