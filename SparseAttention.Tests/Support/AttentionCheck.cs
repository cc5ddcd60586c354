using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Reference;
using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>Attention forward and backward against the float64 dense reference, with SPEC 7's tolerances.</summary>
internal static class AttentionCheck
{
    /// <summary>Runs <paramref name="attend"/> and its backward on fresh random inputs and checks output and gradients against the float64 reference.</summary>
    public static (double[] Output, double[][] Grads) AgainstReference<T>(
        string device, AttentionShape shape, TokenMask mask, Func<DeviceTensor<T>, DeviceTensor<T>, DeviceTensor<T>, Tape, DeviceTensor<T>> attend, string what, double? scale = null)
        where T : unmanaged
    {
        var dev = TestDevices.Get(device);
        var random = TestData.NewRandom($"{typeof(T).Name} {what}");
        var data = Enumerable.Range(0, 4).Select(_ => TestData.Values<T>(random, shape.Elements)).ToArray();
        var tensors = data.Select(d => DeviceTensor<T>.FromSpan(dev, d.Values, shape.Batch, shape.Ctx, shape.Embedding)).ToArray();
        try
        {
            using var tape = new Tape();
            using var output = attend(tensors[0], tensors[1], tensors[2], tape);
            using var grads = tape.Backward(output, tensors[3]);
            var s = scale ?? 1 / Math.Sqrt(shape.HeadDim);
            var expected = DenseReference.Forward(data[0].Exact, data[1].Exact, data[2].Exact, shape, mask, s);
            var (dq, dk, dv) = DenseReference.Backward(data[0].Exact, data[1].Exact, data[2].Exact, data[3].Exact, shape, mask, s);
            var naive = NaiveAttention.Run<T>(data[0].Exact, data[1].Exact, data[2].Exact, data[3].Exact, shape, mask, s);

            var actualOutput = Numeric.ToDouble<T>(output.ToArray());
            Errors.AssertWithin(Errors.Relative(actualOutput, expected), Errors.Tolerance<T>(Errors.Relative(naive.Output, expected)), $"{what} output");
            var actualGrads = new double[3][];
            double[][] expectedGrads = [dq, dk, dv], naiveGrads = [naive.Dq, naive.Dk, naive.Dv];
            for (var i = 0; i < 3; i++)
            {
                actualGrads[i] = Numeric.ToDouble<T>(grads.Of(tensors[i]).ToArray());
                var tolerance = Errors.Tolerance<T>(Errors.Relative(naiveGrads[i], expectedGrads[i]), gradient: true);
                Errors.AssertWithin(Errors.Relative(actualGrads[i], expectedGrads[i]), tolerance, $"{what} d{"qkv"[i]}");
            }

            return (actualOutput, actualGrads);
        }
        finally
        {
            Array.ForEach(tensors, t => t.Dispose());
        }
    }
}
