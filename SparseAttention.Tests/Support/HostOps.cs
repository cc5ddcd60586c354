using SparseAttention.Autograd;
using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>
/// Differentiable ops of a user's own, computed on the host and recorded with <see cref="Tape.Apply{TOut}"/>: a linear
/// layer, a residual add and casts between element types. Sums run in double in a fixed order, so they are deterministic.
/// </summary>
internal static class HostOps
{
    /// <summary>How many times any of these ops ran its backward (to see that none ran).</summary>
    public static int BackwardRuns { get; private set; }

    /// <summary><c>y = x · w</c> over the last dimension: x <c>[..., e]</c>, w <c>[e, e]</c>.</summary>
    public static DeviceTensor<float> Linear(Tape tape, DeviceTensor<float> x, DeviceTensor<float> w)
    {
        var e = w.Shape[0];
        var rows = (int)(x.Length / e);
        return tape.Apply(
            [x, w],
            context =>
            {
                context.Save(x, w);
                return Upload(x, MatMul(x.ToArray(), w.ToArray(), rows, e, e, transposeA: false, transposeB: false));
            },
            (context, dy) =>
            {
                BackwardRuns++;
                var (xs, ws, g) = (context.Saved<float>(0).ToArray(), context.Saved<float>(1).ToArray(), dy.ToArray());
                return
                [
                    context.NeedsGrad(0) ? Upload(x, MatMul(g, ws, rows, e, e, transposeA: false, transposeB: true)) : null,
                    context.NeedsGrad(1) ? Upload(w, MatMul(xs, g, e, rows, e, transposeA: true, transposeB: false)) : null,
                ];
            },
            flops: 2L * rows * e * e,
            name: "linear");
    }

    /// <summary><c>a + b</c>, element-wise.</summary>
    public static DeviceTensor<float> Add(Tape tape, DeviceTensor<float> a, DeviceTensor<float> b) => tape.Apply(
        [a, b],
        _ => Upload(a, a.ToArray().Zip(b.ToArray(), (x, y) => x + y).ToArray()),
        (context, dy) =>
        {
            BackwardRuns++;
            var g = dy.ToArray();
            return [context.NeedsGrad(0) ? Upload(a, g) : null, context.NeedsGrad(1) ? Upload(b, g) : null];
        },
        flops: a.Length,
        name: "add");

    /// <summary>The same values in another element type (rounded to nearest even); the gradient is cast back.</summary>
    public static DeviceTensor<TOut> Cast<TIn, TOut>(Tape tape, DeviceTensor<TIn> x)
        where TIn : unmanaged
        where TOut : unmanaged => tape.Apply(
        [x],
        _ => DeviceTensor<TOut>.FromSpan(x.Device, Numeric.FromDouble<TOut>(Numeric.ToDouble<TIn>(x.ToArray())), [.. x.Shape]),
        (_, dy) =>
        {
            BackwardRuns++;
            return [DeviceTensor<TIn>.FromSpan(x.Device, Numeric.FromDouble<TIn>(Numeric.ToDouble<TOut>(dy.ToArray())), [.. x.Shape])];
        },
        flops: x.Length,
        name: $"cast {typeof(TOut).Name}");

    /// <summary><c>op(A) · op(B)</c> with <c>op(A)</c> <c>[m, k]</c> and <c>op(B)</c> <c>[k, n]</c>, row-major, summed in double.</summary>
    public static float[] MatMul(float[] a, float[] b, int m, int k, int n, bool transposeA, bool transposeB)
    {
        var c = new float[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = 0;
                for (var p = 0; p < k; p++)
                {
                    sum += (double)a[transposeA ? (p * m) + i : (i * k) + p] * b[transposeB ? (j * k) + p : (p * n) + j];
                }

                c[(i * n) + j] = (float)sum;
            }
        }

        return c;
    }

    private static DeviceTensor<float> Upload(DeviceTensor<float> like, float[] data) => DeviceTensor<float>.FromSpan(like.Device, data, [.. like.Shape]);
}
