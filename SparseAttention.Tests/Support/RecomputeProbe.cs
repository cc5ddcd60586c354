using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>Runs a small stack of attention layers forward and backward and reports results and peak device bytes.</summary>
internal static class RecomputeProbe
{
    public static (T[][] Results, long PeakBytes) Run<T>(ComputeDevice device, bool recompute, int layers)
        where T : unmanaged
    {
        var shape = new AttentionShape(1, 128, 2, 16);
        var random = new Random(12345);
        var inputs = Enumerable.Range(0, 2).Select(_ => TestData.Values<T>(random, shape.Elements).Values).ToArray();
        using var x = DeviceTensor<T>.FromSpan(device, inputs[0], shape.Batch, shape.Ctx, shape.Embedding);
        using var outputGrad = DeviceTensor<T>.FromSpan(device, inputs[1], shape.Batch, shape.Ctx, shape.Embedding);
        device.Synchronize();
        device.ResetPeak();
        var options = new AttentionOptions { Recompute = recompute };
        using var tape = new Tape();
        var activations = new List<DeviceTensor<T>>();
        var current = x;
        for (var layer = 0; layer < layers; layer++)
        {
            current = BlockSparseAttention.Compute(current, current, current, shape.Heads, AttentionPattern.All, 16, options, tape);
            activations.Add(current);
        }

        using var grads = tape.Backward(current, outputGrad);
        var results = new[] { current.ToArray(), grads.Of(x).ToArray() };
        var peak = device.PeakBytes;
        activations.ForEach(a => a.Dispose());
        return (results, peak);
    }
}
