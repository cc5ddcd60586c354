using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Tensors;

namespace SparseAttention.Cli.Commands;

/// <summary>
/// Issue 15's benchmark: a stack of layers <c>x + linear(attention(x, x, x))</c> (fp16, one checkpoint segment per layer)
/// trained for one step under each tape policy: peak device bytes, forward+backward time and the scheduler's report.
/// Defaults are the GPU case (24 layers, ctx 16384, 16 heads, head dim 64); <c>--ctx</c>, <c>--layers</c>, <c>--heads</c>
/// shrink it for a check on the CPU accelerator (<c>--cpu</c>); <c>--pattern fixed|local</c> runs one pattern.
/// </summary>
internal static class SchedulerBench
{
    public static int Run(CommandLine line)
    {
        using var device = line.Has("cpu") ? ComputeDevice.CreateCpu() : ComputeDevice.CreateDefault();
        int layers = line.Int("layers", 24), ctx = line.Int("ctx", 16384), heads = line.Int("heads", 16), headDim = line.Int("head-dim", 64);
        var runs = line.Int("runs", device.IsCuda ? 5 : 1);
        Console.WriteLine($"# {device.Name}: scheduler, {layers} layers, B1 N{ctx} H{heads} D{headDim} fp16, {runs} timed runs per policy");
        (string Name, AttentionPattern Pattern, int Block)[] patterns = [("fixed", AttentionPattern.Fixed(128, 4, 1), 32), ("local", AttentionPattern.Local(256), 64)];
        var only = line.Text("pattern");
        foreach (var (name, pattern, block) in patterns.Where(p => only is null or "all" || p.Name == only))
        {
            using var stack = new Stack(device, layers, ctx, heads, headDim, pattern, block);
            var keepAll = Measure(stack, name, TapePolicy.KeepAll, runs);
            var recomputeAll = Measure(stack, name, TapePolicy.RecomputeAll, runs);
            Measure(stack, name, TapePolicy.SquareRoot, runs);

            // Budgets the scheduler must meet: half-way between recompute-all and keep-all, and recompute-all's own peak.
            if (keepAll is not null && recomputeAll is not null)
            {
                Measure(stack, name, TapePolicy.Budget((keepAll.ExpectedPeakBytes + recomputeAll.ExpectedPeakBytes) / 2), runs);
                Measure(stack, name, TapePolicy.Budget(recomputeAll.ExpectedPeakBytes), runs);
            }
        }

        return 0;
    }

    // One untimed step first on CUDA (kernel compiles); on the CPU accelerator, a check of the code path, none.
    private static ScheduleReport? Measure(Stack stack, string pattern, TapePolicy policy, int runs)
    {
        try
        {
            var warmup = stack.Device.IsCuda ? 1 : 0;
            var steps = Enumerable.Range(0, runs + warmup).Select(_ => stack.Step(policy)).Skip(warmup).ToList();
            var median = steps.Select(s => s.Milliseconds).Order().ElementAt(steps.Count / 2);
            var (schedule, peak) = (steps[^1].Schedule, steps[^1].PeakBytes);
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "scheduler", pattern, policy = policy.ToString(), peakBytes = peak, fwdBwdMs = median, clock = Stack.Clock(stack.Device),
                expectedPeakBytes = schedule.ExpectedPeakBytes, keepAllPeakBytes = schedule.KeepAllPeakBytes, flopsAdded = schedule.FlopsAdded,
                recomputed = schedule.Entries.Count(e => e.Recomputes), evicted = schedule.Entries.Count(e => e.OutputEvicted),
            }));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"scheduler {pattern,-5} {policy,-28}: peak {peak / 1e6,9:F1} MB  fwd+bwd {median,9:F1} ms"));
            Console.WriteLine(schedule);
            return schedule;
        }
        catch (ArgumentException ex)
        {
            Console.WriteLine($"scheduler {pattern,-5} {policy,-28}: rejected: {ex.Message}");
            return null;
        }
    }

    /// <summary>The stack's input, output gradient and weights, made once; each step builds a new tape.</summary>
    private sealed class Stack(ComputeDevice device, int layers, int ctx, int heads, int headDim, AttentionPattern pattern, int block) : IDisposable
    {
        private readonly DeviceTensor<Half> input = Random(device, 1, 1, ctx, heads * headDim);
        private readonly DeviceTensor<Half> outputGrad = Random(device, 1, 1, ctx, heads * headDim);
        private readonly DeviceTensor<Half>[] weights = [.. Enumerable.Range(0, layers).Select(l => Random(device, 0.02, heads * headDim, heads * headDim))];

        public ComputeDevice Device => device;

        /// <summary>What times a step: CUDA device events, or on the CPU accelerator (no profiling; its stream runs in order on the host) a stopwatch.</summary>
        public static string Clock(ComputeDevice device) => device.IsCuda ? "device events" : "host stopwatch";

        /// <summary>One forward and backward; peak device bytes above the inputs and weights (the gradients count).</summary>
        public (ScheduleReport Schedule, long PeakBytes, double Milliseconds) Step(TapePolicy policy)
        {
            device.Synchronize();
            var baseline = device.AllocatedBytes;
            device.ResetPeak();
            using var start = device.IsCuda ? device.Accelerator.DefaultStream.AddProfilingMarker() : null;
            var clock = Stopwatch.StartNew();
            using var tape = new Tape(policy);
            var current = input;
            foreach (var weight in weights)
            {
                var next = tape.Checkpoint(current, (t, x) => Layer(t, x, weight), "layer");
                if (current != input)
                {
                    current.Dispose();
                }

                current = next;
            }

            var schedule = tape.Schedule;
            try
            {
                tape.Backward(current, outputGrad).Dispose();
                using var end = start is null ? null : device.Accelerator.DefaultStream.AddProfilingMarker();
                device.Synchronize();
                var milliseconds = end is null ? clock.Elapsed.TotalMilliseconds : end.MeasureFrom(start!).TotalMilliseconds;
                return (schedule, device.PeakBytes - baseline, milliseconds);
            }
            finally
            {
                current.Dispose();
            }
        }

        public void Dispose()
        {
            input.Dispose();
            outputGrad.Dispose();
            Array.ForEach(weights, w => w.Dispose());
        }

        private DeviceTensor<Half> Layer(Tape tape, DeviceTensor<Half> x, DeviceTensor<Half> weight)
        {
            using var attended = BlockSparseAttention.Compute(x, x, x, heads, pattern, block, tape: tape);
            using var projected = Fp16UserOps.Linear(tape, attended, weight);
            return Fp16UserOps.Add(tape, x, projected);
        }

        private static DeviceTensor<Half> Random(ComputeDevice device, double scale, params int[] shape)
        {
            var random = new Random(15);
            var data = new Half[shape.Aggregate(1, (a, b) => a * b)];
            for (var i = 0; i < data.Length; i++)
            {
                data[i] = (Half)((random.NextDouble() * 2 - 1) * scale);
            }

            return DeviceTensor<Half>.FromSpan(device, data, shape);
        }
    }
}
