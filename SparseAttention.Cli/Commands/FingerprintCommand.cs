using System.Runtime.InteropServices;
using System.Security.Cryptography;
using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Tensors;

namespace SparseAttention.Cli.Commands;

/// <summary>
/// A hash of the output and gradients of every path (fused, unfused, TF32, bf16 scores) and pattern on fixed inputs: two
/// builds that print the same lines on one device compute the same bits, which is what a refactor must keep.
/// </summary>
internal static class FingerprintCommand
{
    public static int Run(CommandLine line)
    {
        using var device = line.Has("cpu") ? ComputeDevice.CreateCpu() : ComputeDevice.CreateDefault();
        Console.WriteLine($"fingerprint on {device.Name}");
        // The CPU accelerator simulates every GPU thread: one sequence and head dim 32 there.
        var shape = device.IsCuda ? new AttentionShape(2, 256, 3, 64) : new AttentionShape(1, 256, 3, 32);
        AttentionPattern[] patterns = [AttentionPattern.All, AttentionPattern.Local(64), AttentionPattern.Strided(8), AttentionPattern.Fixed(128, 3, 1)];
        foreach (var pattern in patterns)
        {
            Print<float>(device, shape, $"fp32 {pattern}", new AttentionOptions(), (q, k, v, o, t) => BlockSparseAttention.Compute(q, k, v, shape.Heads, pattern, 32, o, t));
            Print<float>(device, shape, $"tf32 {pattern}", new AttentionOptions { AllowTf32 = true }, (q, k, v, o, t) => BlockSparseAttention.Compute(q, k, v, shape.Heads, pattern, 32, o, t));
            Print<float>(device, shape, $"fp32 bf16-scores {pattern}", new AttentionOptions { BFloat16Scores = true }, (q, k, v, o, t) => BlockSparseAttention.Compute(q, k, v, shape.Heads, pattern, 32, o, t));
            foreach (var fused in new[] { false, true })
            {
                var options = new AttentionOptions { Fused = fused, Hopper = false };
                var path = fused ? "fused" : "unfused";
                Print<Half>(device, shape, $"fp16 {path} {pattern}", options, (q, k, v, o, t) => BlockSparseAttention.Compute(q, k, v, shape.Heads, pattern, 32, o, t));
                Print<BFloat16>(device, shape, $"bf16 {path} {pattern}", options, (q, k, v, o, t) => BlockSparseAttention.Compute(q, k, v, shape.Heads, pattern, 32, o, t));
            }
        }

        // A bidirectional custom layout with an element predicate, autoregressAtKey and an explicit scale; dense attention.
        var layout = BlockLayout.Custom(new bool[,] { { true, false, true, true }, { false, false, false, false }, { true, true, true, false }, { true, true, false, true } }, 64, shape.Heads, (h, q, k) => (q + (3 * k) + h) % 7 != 0);
        TokenMask causalish = (h, q, k) => k <= q && (q - k + h) % 3 != 1;
        foreach (var fused in new[] { false, true })
        {
            var options = new AttentionOptions { Fused = fused, Hopper = false, AutoregressAtKey = 136, Scale = 0.3 };
            Print<Half>(device, shape, $"fp16 {(fused ? "fused" : "unfused")} custom", options, (q, k, v, o, t) => BlockSparseAttention.Compute(q, k, v, layout, o, t));
            Print<Half>(device, shape, $"fp16 {(fused ? "fused" : "unfused")} dense", options with { AutoregressAtKey = null }, (q, k, v, o, t) => BlockSparseAttention.Dense(q, k, v, shape.Heads, causalish, o, t));
        }

        Print<float>(device, shape, "fp32 custom", new AttentionOptions { AutoregressAtKey = 136, Scale = 0.3 }, (q, k, v, o, t) => BlockSparseAttention.Compute(q, k, v, layout, o, t));
        return 0;
    }

    private static void Print<T>(ComputeDevice device, AttentionShape shape, string name, AttentionOptions options, Func<DeviceTensor<T>, DeviceTensor<T>, DeviceTensor<T>, AttentionOptions, Tape, DeviceTensor<T>> attend)
        where T : unmanaged
    {
        var random = new Random(2019);
        var tensors = Enumerable.Range(0, 4).Select(_ =>
        {
            var values = Enumerable.Range(0, (int)shape.Elements).Select(_ => Numeric.FromDouble<T>((random.NextDouble() * 2) - 1)).ToArray();
            return DeviceTensor<T>.FromSpan(device, values, shape.Batch, shape.Ctx, shape.Embedding);
        }).ToArray();
        using var tape = new Tape();
        using var output = attend(tensors[0], tensors[1], tensors[2], options, tape);
        using var grads = tape.Backward(output, tensors[3]);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var result in new[] { output.ToArray(), grads.Of(tensors[0]).ToArray(), grads.Of(tensors[1]).ToArray(), grads.Of(tensors[2]).ToArray() })
        {
            hash.AppendData(MemoryMarshal.AsBytes(result.AsSpan()));
        }

        Array.ForEach(tensors, t => t.Dispose());
        Console.WriteLine($"{name,-36} {Convert.ToHexString(hash.GetHashAndReset())[..16]}");
    }
}
