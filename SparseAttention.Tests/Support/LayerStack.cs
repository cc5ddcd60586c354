using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Planning;
using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>
/// A stack of layers <c>x + linear(attention(x, x, x))</c> (block-sparse attention, a user linear op, a residual add),
/// trained for one step on a tape: its results, the tape's schedule and the device's peak bytes above the inputs.
/// With an element type other than fp32 the attention runs in it between casts, the user ops stay fp32.
/// </summary>
internal sealed class LayerStack<T>(ComputeDevice device, AttentionShape shape, int layers, AttentionPattern pattern, Random random)
    where T : unmanaged
{
    private const int BlockSize = 16;

    private readonly float[] input = TestData.Values<float>(random, shape.Elements).Values;
    private readonly float[] outputGrad = TestData.Values<float>(random, shape.Elements).Values;
    private readonly float[][] weights = [.. Enumerable.Range(0, layers).Select(_ => TestData.Values<float>(random, (long)shape.Embedding * shape.Embedding, 0.2).Values)];

    public float[] Input => input;

    public float[] OutputGrad => outputGrad;

    public float[][] Weights => weights;

    /// <summary>One forward and backward: output, the input's and every weight's gradient; the schedule; peak bytes above the inputs.</summary>
    public (float[][] Results, ScheduleReport Schedule, long PeakBytes) Step(TapePolicy policy, bool checkpoint)
    {
        using var x = DeviceTensor<float>.FromSpan(device, input, shape.Batch, shape.Ctx, shape.Embedding);
        using var grad = DeviceTensor<float>.FromSpan(device, outputGrad, shape.Batch, shape.Ctx, shape.Embedding);
        var w = weights.Select(data => DeviceTensor<float>.FromSpan(device, data, shape.Embedding, shape.Embedding)).ToArray();

        // The plan's tables stay on the device after the first step: uploaded here, they are not the step's bytes.
        device.Upload(BlockSparsePlan.For(pattern.ToLayout(shape.Ctx, BlockSize, shape.Heads)));
        device.Synchronize();
        var baseline = device.AllocatedBytes;
        device.ResetPeak();
        using var tape = new Tape(policy);
        var current = x;
        for (var layer = 0; layer < layers; layer++)
        {
            var weight = w[layer];
            var next = checkpoint ? tape.Checkpoint(current, (t, input) => Layer(t, input, weight), $"layer {layer}") : Layer(tape, current, weight);

            // Like dropping a reference in PyTorch: the tape keeps what backward needs, the scheduler may free the rest.
            if (current != x)
            {
                current.Dispose();
            }

            current = next;
        }

        var schedule = tape.Schedule;
        using var grads = tape.Backward(current, grad);
        float[][] results = [current.ToArray(), grads.Of(x).ToArray(), .. w.Select(weight => grads.Of(weight).ToArray())];
        device.Synchronize();
        var peak = device.PeakBytes - baseline;
        current.Dispose();
        Array.ForEach(w, t => t.Dispose());
        return (results, schedule, peak);
    }

    private DeviceTensor<float> Layer(Tape tape, DeviceTensor<float> x, DeviceTensor<float> weight)
    {
        using var attended = Attend(tape, x);
        using var projected = HostOps.Linear(tape, attended, weight);
        return HostOps.Add(tape, x, projected);
    }

    private DeviceTensor<float> Attend(Tape tape, DeviceTensor<float> x)
    {
        if (typeof(T) == typeof(float))
        {
            return BlockSparseAttention.Compute(x, x, x, shape.Heads, pattern, BlockSize, tape: tape);
        }

        using var narrow = HostOps.Cast<float, T>(tape, x);
        using var attended = BlockSparseAttention.Compute(narrow, narrow, narrow, shape.Heads, pattern, BlockSize, tape: tape);
        return HostOps.Cast<T, float>(tape, attended);
    }
}
