using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Autograd;
using SparseAttention.Kernels.BlockSparse;
using SparseAttention.Kernels.Common;
using SparseAttention.Tensors;
using Half = System.Half;

// ILGPU reads the kernel's parameter struct through its runtime assembly.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("ILGPURuntime")]

namespace SparseAttention.Cli.Commands;

/// <summary>
/// A model's own fp16 ops, written the way a user of the library writes them: an ILGPU kernel of their own (a plain
/// matrix product, one output element per thread, fp32 sums in a fixed order) and <see cref="Tape.Apply{TOut}"/>.
/// </summary>
internal static class Fp16UserOps
{
    private static readonly Dictionary<Accelerator, Action<Index1D, MatMulParams>> Kernels = [];

    /// <summary><c>y = x · w</c> over the last dimension: x <c>[..., e]</c>, w <c>[e, e]</c>.</summary>
    public static DeviceTensor<Half> Linear(Tape tape, DeviceTensor<Half> x, DeviceTensor<Half> w)
    {
        var e = w.Shape[0];
        var rows = (int)(x.Length / e);
        return tape.Apply(
            [x, w],
            context =>
            {
                context.Save(x, w);
                return MatMul(x, w, [.. x.Shape], rows, e, e, transposeA: false, transposeB: false);
            },
            (context, dy) =>
            [
                context.NeedsGrad(0) ? MatMul(dy, context.Saved<Half>(1), [.. x.Shape], rows, e, e, transposeA: false, transposeB: true) : null,
                context.NeedsGrad(1) ? MatMul(context.Saved<Half>(0), dy, [e, e], e, rows, e, transposeA: true, transposeB: false) : null,
            ],
            flops: 2L * rows * e * e,
            name: "linear");
    }

    /// <summary><c>a + b</c>, element-wise.</summary>
    public static DeviceTensor<Half> Add(Tape tape, DeviceTensor<Half> a, DeviceTensor<Half> b) => tape.Apply(
        [a, b],
        _ => Sum(a, b),
        (context, dy) => [context.NeedsGrad(0) ? Copy(dy) : null, context.NeedsGrad(1) ? Copy(dy) : null],
        flops: a.Length,
        name: "add");

    private static DeviceTensor<Half> Sum(DeviceTensor<Half> a, DeviceTensor<Half> b)
    {
        var output = DeviceTensor<Half>.Allocate(a.Device, [.. a.Shape]);
        ElementwiseKernels.Add<ushort, Fp16>(a.Device.Accelerator, new AddParams<ushort> { Left = Bits(a), Right = Bits(b), Output = Bits(output) });
        return output;
    }

    private static DeviceTensor<Half> Copy(DeviceTensor<Half> source)
    {
        var copy = DeviceTensor<Half>.Allocate(source.Device, [.. source.Shape]);
        source.View.CopyTo(copy.View);
        return copy;
    }

    // C = op(A) · op(B), op(A) [m, k], op(B) [k, n], row-major.
    private static DeviceTensor<Half> MatMul(DeviceTensor<Half> a, DeviceTensor<Half> b, int[] shape, int m, int k, int n, bool transposeA, bool transposeB)
    {
        var output = DeviceTensor<Half>.Allocate(a.Device, shape);
        var accelerator = a.Device.Accelerator;
        if (!Kernels.TryGetValue(accelerator, out var kernel))
        {
            kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, MatMulParams>(MatMulKernel);
            Kernels[accelerator] = kernel;
        }

        kernel((int)output.Length, new MatMulParams(Bits(a), Bits(b), Bits(output), m, k, n, transposeA ? 1 : k, transposeA ? m : 1, transposeB ? 1 : n, transposeB ? k : 1));
        return output;
    }

    private static ArrayView<ushort> Bits(DeviceTensor<Half> tensor) => tensor.View.AsContiguous().Cast<ushort>();

    private static void MatMulKernel(Index1D index, MatMulParams p)
    {
        int row = index / p.N, column = index % p.N;
        var sum = 0f;
        for (var i = 0; i < p.K; i++)
        {
            sum += default(Fp16).ToFloat(p.A[(row * p.ARow) + (i * p.ACol)]) * default(Fp16).ToFloat(p.B[(i * p.BRow) + (column * p.BCol)]);
        }

        p.C[index] = default(Fp16).FromFloat(sum);
    }

    internal readonly record struct MatMulParams(ArrayView<ushort> A, ArrayView<ushort> B, ArrayView<ushort> C, int M, int K, int N, int ARow, int ACol, int BRow, int BCol);
}
