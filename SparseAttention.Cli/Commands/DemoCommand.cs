using System.Diagnostics;
using System.Globalization;
using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Layouts;
using SparseAttention.Reference;
using SparseAttention.Tensors;

namespace SparseAttention.Cli.Commands;

/// <summary>The main job: block-sparse attention with every pattern on the default accelerator, checked against the dense reference.</summary>
internal static class DemoCommand
{
    public static int Run(CommandLine line)
    {
        using var device = line.Has("cpu") ? ComputeDevice.CreateCpu() : ComputeDevice.CreateDefault();
        // CUDA: the original's example. CPU: a smaller problem, since ILGPU's CPU accelerator simulates every GPU thread.
        var shape = device.IsCuda ? new AttentionShape(4, 1024, 4, 64) : new AttentionShape(1, 256, 4, 16);
        var block = device.IsCuda ? 32 : 16;
        Console.WriteLine($"SparseAttention demo on {device.Name}");
        Console.WriteLine($"batch {shape.Batch}, ctx {shape.Ctx}, heads {shape.Heads}, headDim {shape.HeadDim}, block {block}, fp32");
        var random = new Random(2019);
        var (q, k, v) = (RandomData(random, shape), RandomData(random, shape), RandomData(random, shape));
        using var qt = Upload(device, q, shape);
        using var kt = Upload(device, k, shape);
        using var vt = Upload(device, v, shape);

        AttentionPattern[] patterns = device.IsCuda
            ? [AttentionPattern.All, AttentionPattern.Local(32), AttentionPattern.Strided(32), AttentionPattern.Fixed(128, 4, 1)]
            : [AttentionPattern.All, AttentionPattern.Local(32), AttentionPattern.Strided(16), AttentionPattern.Fixed(64, 4, 1)];
        Console.WriteLine("pattern            density  max |error|  rel error   time (ms)");
        var worst = 0.0;
        foreach (var pattern in patterns)
        {
            var stopwatch = Stopwatch.StartNew();
            using var output = BlockSparseAttention.Compute(qt, kt, vt, shape.Heads, pattern, block);
            var actual = output.ToArray();
            stopwatch.Stop();
            var mask = pattern.ToTokenMask(shape.Ctx, block, shape.Heads);
            var expected = DenseReference.Forward(Array.ConvertAll(q, x => (double)x), Array.ConvertAll(k, x => (double)x), Array.ConvertAll(v, x => (double)x), shape, mask);
            var maxError = actual.Select((a, i) => Math.Abs(a - expected[i])).Max();
            var relative = Math.Sqrt(actual.Select((a, i) => (a - expected[i]) * (a - expected[i])).Sum() / expected.Sum(e => e * e));
            var density = Enumerable.Range(0, shape.Heads).Sum(h => pattern.ToLayout(shape.Ctx, block, shape.Heads).AllowedElements(h)) / ((double)shape.Heads * shape.Ctx * shape.Ctx);
            worst = Math.Max(worst, relative);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{pattern,-17}  {density,7:P2}  {maxError,11:E2}  {relative,9:E2}  {stopwatch.Elapsed.TotalMilliseconds,10:F1}"));
        }

        var ok = worst <= 1e-5;
        Console.WriteLine(ok ? "all patterns match the dense reference (relative error <= 1e-5)" : $"MISMATCH: worst relative error {worst:E2}");
        return ok ? 0 : 1;
    }

    private static float[] RandomData(Random random, AttentionShape shape) =>
        Enumerable.Range(0, (int)shape.Elements).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

    private static DeviceTensor<float> Upload(ComputeDevice device, float[] data, AttentionShape shape) =>
        DeviceTensor<float>.FromSpan(device, data, shape.Batch, shape.Ctx, shape.Embedding);
}
