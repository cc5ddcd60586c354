using System.Globalization;
using System.Text.Json;
using ILGPU.Runtime;
using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Ops;
using SparseAttention.Kernels.Hopper;
using SparseAttention.Planning;
using SparseAttention.Selection;
using SparseAttention.Tensors;

namespace SparseAttention.Cli.Commands;

/// <summary>
/// The GPU benchmark: copy bandwidth, each block-sparse op (issue 3's shape), attention forward and forward+backward on
/// the peer cases of scripts/peers.py (fp16 at head dim 64, bf16 at head dim 128), and peak memory with and without recompute.
/// Prints one JSON object per line and a table last.
/// </summary>
internal static class BenchCommand
{
    private static readonly List<string> Table = [];

    public static int Run(CommandLine line)
    {
        // The scheduler's case also runs on the CPU accelerator at a small size, to check it there.
        if (line.Text("section") == "scheduler")
        {
            return SchedulerBench.Run(line);
        }

        using var device = ComputeDevice.CreateDefault();
        if (!device.IsCuda)
        {
            Console.Error.WriteLine($"bench needs a CUDA GPU; this machine has {device.Name}. Timings on the CPU accelerator say nothing about the kernels.");
            return 2;
        }

        Console.WriteLine($"# {device.Name}");
        var section = line.Text("section") ?? "all";
        bool Runs(string name) => section == "all" || section == name;
        var bandwidth = CopyBandwidth(device);
        foreach (var block in Runs("ops") ? new[] { 32, 64 } : [])
        {
            OpsBench(device, block, bandwidth);
        }

        if (Runs("ops"))
        {
            Fp32Bench(device);
        }

        (string Name, int Batch, int Heads, int Ctx, int HeadDim, AttentionPattern Pattern, int Block)[] cases =
        [
            ("all (causal), seed example", 4, 4, 1024, 64, AttentionPattern.All, 64),
            ("all (causal)", 4, 16, 4096, 64, AttentionPattern.All, 64),
            ("local, L 256", 4, 16, 4096, 64, AttentionPattern.Local(256), 64),
            ("strided, L 64", 4, 16, 4096, 64, AttentionPattern.Strided(64), 64),
            ("fixed, L 128, 4 verts, block 32", 4, 16, 4096, 64, AttentionPattern.Fixed(128, 4, 1), 32),
            ("fixed, L 128, 4 verts, block 32", 1, 16, 16384, 64, AttentionPattern.Fixed(128, 4, 1), 32),
            ("all (causal), head dim 128", 4, 16, 4096, 128, AttentionPattern.All, 64),
        ];

        // --hopper on|off forces the fused kernels' family either way (default: the selector's choice), so one call times both.
        var options = line.Text("hopper") switch
        {
            "on" => new AttentionOptions { Hopper = true },
            "off" => new AttentionOptions { Hopper = false },
            null => AttentionOptions.Default,
            var other => throw new ArgumentException($"--hopper {other}: use on or off", "line"),
        };

        // --case and --dtype narrow the attention cases, so a profiler sees one case's launches.
        bool Picked(string name, string dtype) => Runs("attention") && (line.Text("case") ?? name) == name && (line.Text("dtype") ?? dtype) == dtype;
        foreach (var c in cases.Where(c => Picked(c.Name, "fp16")))
        {
            AttentionBench(device, c.Name, c.Batch, c.Heads, c.Ctx, c.HeadDim, c.Pattern, c.Block, "fp16", x => (Half)x, options);
        }

        // Head dim 128 in bf16 at 8k to 16k (issue 13's cases, beside peers.py's).
        (string Name, int Batch, int Ctx, AttentionPattern Pattern, int Block)[] wide =
        [
            ("all (causal)", 2, 8192, AttentionPattern.All, 64),
            ("all (causal)", 1, 16384, AttentionPattern.All, 64),
            ("local, L 256", 2, 8192, AttentionPattern.Local(256), 64),
            ("strided, L 64", 2, 8192, AttentionPattern.Strided(64), 64),
            ("fixed, L 128, 4 verts, block 32", 2, 8192, AttentionPattern.Fixed(128, 4, 1), 32),
        ];
        foreach (var c in wide.Where(c => Picked(c.Name, "bf16")))
        {
            AttentionBench(device, c.Name, c.Batch, 16, c.Ctx, 128, c.Pattern, c.Block, "bf16", x => (BFloat16)x, options);
        }

        foreach (var ctx in Runs("memory") ? new[] { 4096, 16384, 65536 } : [])
        {
            FusedMemory(device, ctx);
        }

        if (Runs("recompute"))
        {
            RecomputeMemory(device);
        }

        Console.WriteLine();
        Table.ForEach(Console.WriteLine);
        return 0;
    }

    private static double CopyBandwidth(ComputeDevice device)
    {
        const long elements = 256L << 20; // 1 GiB of floats
        using var source = device.Accelerator.Allocate1D<float>(elements);
        using var target = device.Accelerator.Allocate1D<float>(elements);
        var ms = DeviceTimer.MedianMilliseconds(device.Accelerator, () => ArrayViewExtensions.CopyTo(source.View.BaseView, device.Accelerator.DefaultStream, target.View.BaseView));
        var gbs = 2.0 * elements * 4 / (ms * 1e6);
        Report(new { bench = "copy", bytes = 2 * elements * 4, ms, gbPerS = gbs }, $"copy 1 GiB device-to-device: {ms:F3} ms, {gbs:F0} GB/s (read + write)");
        return gbs;
    }

    private static void OpsBench(ComputeDevice device, int block, double bandwidth)
    {
        const int batch = 4, heads = 16, ctx = 4096, headDim = 64;
        var plan = BlockSparsePlan.For(BlockLayout.All(ctx, block, heads));
        var random = new Random(1);
        using var q = RandomTensor(device, random, batch, ctx, heads * headDim);
        using var k = RandomTensor(device, random, batch, ctx, heads * headDim);
        using var dense = DeviceTensor<Half>.Allocate(device, batch, ctx, heads * headDim);
        using var w = BlockSparseOps.AllocateWeights<Half>(device, plan, batch);
        using var w2 = BlockSparseOps.AllocateWeights<Half>(device, plan, batch);
        BlockSparseOps.QueryKey(q, k, plan, w);
        BlockSparseOps.Softmax(w, plan, w, 0.125f);
        double denseBytes = 2.0 * batch * ctx * heads * headDim, weightBytes = 2.0 * w.Length;
        double flops = 2.0 * w.Length * headDim;
        void Op(string name, Action run, double bytes, bool matmul)
        {
            var ms = DeviceTimer.MedianMilliseconds(device.Accelerator, run);
            var gbs = bytes / (ms * 1e6);
            var tflops = flops / (ms * 1e9);
            // Issue 3's target: min(50% of what the bytes allow at copy bandwidth, 150 TFLOP/s) for matmuls; 60% of bandwidth for softmax.
            var targetMs = matmul ? Math.Max(bytes / (0.5 * bandwidth * 1e6), flops / 150e9) : bytes / (0.6 * bandwidth * 1e6);
            Report(
                new { bench = "op", op = name, block, batch, heads, ctx, headDim, dtype = "fp16", ms, tflops = matmul ? tflops : 0, gbPerS = gbs, targetMs },
                string.Create(CultureInfo.InvariantCulture, $"op {name,-12} block {block,3}: {ms,8:F3} ms  {(matmul ? $"{tflops,6:F1} TFLOP/s" : $"{gbs,6:F0} GB/s    ")}  target {targetMs:F3} ms ({targetMs / ms:P0} of target speed)"));
        }

        Op("sdd (nt)", () => BlockSparseOps.QueryKey(q, k, plan, w2), 2 * denseBytes + weightBytes, true);
        Op("dsd (nn)", () => BlockSparseOps.WeightValue(w, k, plan, dense), weightBytes + 2 * denseBytes, true);
        Op("dsd (tn)", () => BlockSparseOps.WeightValueTransposed(w, k, plan, dense), weightBytes + 2 * denseBytes, true);
        Op("softmax", () => BlockSparseOps.Softmax(w2, plan, w2, 0.125f), 2 * weightBytes, false);
        Op("softmax grad", () => BlockSparseOps.SoftmaxGrad(w, w2, plan, w2, 0.125f), 3 * weightBytes, false);
    }

    private static void Fp32Bench(ComputeDevice device)
    {
        const int batch = 4, heads = 16, ctx = 4096, headDim = 64, block = 64;
        var plan = BlockSparsePlan.For(BlockLayout.All(ctx, block, heads));
        var random = new Random(4);
        var data = Enumerable.Range(0, batch * ctx * heads * headDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        using var q = DeviceTensor<float>.FromSpan(device, data, batch, ctx, heads * headDim);
        using var output = DeviceTensor<float>.Allocate(device, batch, ctx, heads * headDim);
        using var w = BlockSparseOps.AllocateWeights<float>(device, plan, batch);
        var flops = 2.0 * w.Length * headDim;
        foreach (var tf32 in new[] { false, true })
        {
            var sdd = DeviceTimer.MedianMilliseconds(device.Accelerator, () => BlockSparseOps.QueryKey(q, q, plan, w, tf32));
            var nn = DeviceTimer.MedianMilliseconds(device.Accelerator, () => BlockSparseOps.WeightValue(w, q, plan, output, tf32));
            var path = tf32 ? "tf32" : "fp32 fma";
            Report(new { bench = "op-fp32", path, block, batch, heads, ctx, headDim, sddMs = sdd, nnMs = nn, sddTflops = flops / (sdd * 1e9), nnTflops = flops / (nn * 1e9) },
                string.Create(CultureInfo.InvariantCulture, $"op fp32 {path,-8} block {block}: sdd {sdd,8:F3} ms ({flops / (sdd * 1e9):F1} TFLOP/s)  nn {nn,8:F3} ms ({flops / (nn * 1e9):F1} TFLOP/s)"));
        }
    }

    private static void AttentionBench<T>(ComputeDevice device, string name, int batch, int heads, int ctx, int headDim, AttentionPattern pattern, int block, string dtype, Func<float, T> convert, AttentionOptions requested)
        where T : unmanaged
    {
        // Cases the Hopper family does not cover (blocks of 32) run the portable kernels when it is forced on.
        var options = requested.Hopper == true && !HopperKernels.Supports(headDim, block) ? requested with { Hopper = false } : requested;
        var path = KernelSelector.ForAttention<T>(device.Capability, headDim, block, options);
        var random = new Random(2);
        using var q = RandomTensor(device, random, convert, batch, ctx, heads * headDim);
        using var k = RandomTensor(device, random, convert, batch, ctx, heads * headDim);
        using var v = RandomTensor(device, random, convert, batch, ctx, heads * headDim);
        using var grad = RandomTensor(device, random, convert, batch, ctx, heads * headDim);
        var forward = DeviceTimer.MedianMilliseconds(device.Accelerator, () => BlockSparseAttention.Compute(q, k, v, heads, pattern, block, options).Dispose(), 2, 10);
        var both = DeviceTimer.MedianMilliseconds(device.Accelerator, () =>
        {
            using var tape = new Tape();
            using var output = BlockSparseAttention.Compute(q, k, v, heads, pattern, block, options, tape);
            tape.Backward(output, grad).Dispose();
        }, 2, 10);
        var layout = pattern.ToLayout(ctx, block, heads);
        var nnz = Enumerable.Range(0, heads).Sum(h => (double)layout.AllowedElements(h)) / heads;
        var forwardFlops = 4.0 * batch * heads * nnz * headDim;
        Report(
            new { bench = "attention", name, path = path.ToString(), pattern = pattern.ToString(), batch, heads, ctx, headDim, block, dtype, fwdMs = forward, fwdBwdMs = both, fwdTflops = forwardFlops / (forward * 1e9), fwdBwdTflops = 3.5 * forwardFlops / (both * 1e9) },
            string.Create(CultureInfo.InvariantCulture, $"attention {name,-32} {dtype} {path,-11} B{batch} H{heads} N{ctx} D{headDim} block {block,3}: fwd {forward,8:F3} ms  fwd+bwd {both,8:F3} ms  ({forwardFlops / (forward * 1e9):F1} TFLOP/s fwd, allowed entries only)"));
    }

    private static void RecomputeMemory(ComputeDevice device)
    {
        const int batch = 4, heads = 16, ctx = 4096, headDim = 64, layers = 3;
        var random = new Random(3);
        using var x = RandomTensor(device, random, batch, ctx, heads * headDim);
        using var grad = RandomTensor(device, random, batch, ctx, heads * headDim);
        long Peak(bool recompute)
        {
            device.Synchronize();
            device.ResetPeak();
            using var tape = new Tape();
            var activations = new List<DeviceTensor<Half>>();
            var current = x;
            for (var layer = 0; layer < layers; layer++)
            {
                current = BlockSparseAttention.Compute(current, current, current, heads, AttentionPattern.All, 64, new AttentionOptions { Recompute = recompute, Fused = false }, tape);
                activations.Add(current);
            }

            tape.Backward(current, grad).Dispose();
            device.Synchronize();
            activations.ForEach(a => a.Dispose());
            return device.PeakBytes;
        }

        long without = Peak(false), with = Peak(true);
        Report(new { bench = "recompute", batch, heads, ctx, headDim, layers, peakBytesWithout = without, peakBytesWith = with },
            $"recompute (unfused), {layers} stacked 'all' layers B{batch} H{heads} N{ctx} D{headDim} fp16: peak {without / 1e6:F0} MB without, {with / 1e6:F0} MB with ({1 - (double)with / without:P0} less)");
    }

    // Device bytes a fused forward+backward needs beyond q, k, v, the output gradient, the output, the three gradients
    // and the plan's tables (measured apart: a 'fixed' plan grows with its blocks, which grow with ctx squared).
    private static void FusedMemory(ComputeDevice device, int ctx)
    {
        const int heads = 16, headDim = 64;
        var pattern = AttentionPattern.Fixed(128, 4, 1);
        var plan = BlockSparsePlan.For(pattern.ToLayout(ctx, 32, heads));
        device.Upload(plan);
        var random = new Random(5);
        using var q = RandomTensor(device, random, 1, ctx, heads * headDim);
        using var k = RandomTensor(device, random, 1, ctx, heads * headDim);
        using var v = RandomTensor(device, random, 1, ctx, heads * headDim);
        using var grad = RandomTensor(device, random, 1, ctx, heads * headDim);
        device.Synchronize();
        device.ResetPeak();
        var before = device.AllocatedBytes;
        using (var tape = new Tape())
        {
            using var output = BlockSparseAttention.Compute(q, k, v, heads, pattern, 32, tape: tape);
            tape.Backward(output, grad).Dispose();
            device.Synchronize();
        }

        var tensorBytes = 2L * ctx * heads * headDim;
        var extra = device.PeakBytes - before - 4 * tensorBytes;
        Report(new { bench = "memory", pattern = pattern.ToString(), batch = 1, heads, ctx, headDim, extraBytes = extra, extraBytesPerToken = (double)extra / ctx, planBytes = plan.SizeInBytes },
            string.Create(CultureInfo.InvariantCulture, $"memory fused {pattern} B1 H{heads} N{ctx,6} D{headDim}: {extra / 1e6,8:F2} MB beyond inputs/outputs/gradients ({(double)extra / ctx:F0} B per token); plan {plan.SizeInBytes / 1e6:F1} MB"));
    }

    private static DeviceTensor<Half> RandomTensor(ComputeDevice device, Random random, params int[] shape) => RandomTensor(device, random, x => (Half)x, shape);

    private static DeviceTensor<T> RandomTensor<T>(ComputeDevice device, Random random, Func<float, T> convert, params int[] shape)
        where T : unmanaged
    {
        var data = new T[shape.Aggregate(1, (a, b) => a * b)];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = convert((float)(random.NextDouble() * 2 - 1));
        }

        return DeviceTensor<T>.FromSpan(device, data, shape);
    }

    private static void Report(object json, string row)
    {
        Console.WriteLine(JsonSerializer.Serialize(json));
        Table.Add(row);
    }
}
