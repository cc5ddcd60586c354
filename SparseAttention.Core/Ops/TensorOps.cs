using System.Runtime.CompilerServices;
using SparseAttention.Kernels.BlockSparse;
using SparseAttention.Kernels.Common;
using SparseAttention.Tensors;

namespace SparseAttention.Ops;

/// <summary>Small dense helpers the attention API and the tape need: permutation and accumulation.</summary>
public static class TensorOps
{
    /// <summary>The strided transposition (docs/semantics.md §9) of a <c>[batch, ctx, embedding]</c> tensor, on its device.</summary>
    /// <param name="input">The tensor to permute.</param>
    /// <param name="stride">The stride <c>L</c>.</param>
    /// <param name="inverse">True to undo the transposition.</param>
    /// <exception cref="ArgumentException">The tensor is not rank 3, or ctx is not a multiple of stride.</exception>
    public static DeviceTensor<T> StridedTranspose<T>(DeviceTensor<T> input, int stride, bool inverse = false)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Shape.Count != 3)
        {
            Guard.Throw(nameof(input), $"input must be [batch, ctx, embedding], not rank {input.Shape.Count}");
        }

        int ctx = input.Shape[1], embedding = input.Shape[2];
        Guard.Positive(stride, nameof(stride));
        Guard.MultipleOf(ctx, "ctx", stride, nameof(stride));
        var output = DeviceTensor<T>.Allocate(input.Device, [.. input.Shape]);
        var permutation = inverse ? ctx / stride : stride;
        var tokenBytes = embedding * Unsafe.SizeOf<T>();
        var accelerator = input.Device.Accelerator;
        if (tokenBytes % 16 == 0 && BlockSparseOps.IsVectorAligned(input) && BlockSparseOps.IsVectorAligned(output))
        {
            // Only bytes move: 16-byte quads per thread where the token's bytes and the tensors' starts allow.
            PermuteKernels.Launch(accelerator, new PermuteParams<Quad> { Input = ElementDispatch.As<T, Quad>(input), Output = ElementDispatch.As<T, Quad>(output), Ctx = ctx, Embedding = tokenBytes / 16, Stride = permutation });
        }
        else if (tokenBytes % 4 == 0)
        {
            // Only bytes move: whole 4-byte words per thread whatever the element type.
            PermuteKernels.Launch(accelerator, new PermuteParams<uint> { Input = ElementDispatch.As<T, uint>(input), Output = ElementDispatch.As<T, uint>(output), Ctx = ctx, Embedding = tokenBytes / 4, Stride = permutation });
        }
        else
        {
            PermuteKernels.Launch(accelerator, new PermuteParams<T> { Input = input.View.AsContiguous(), Output = output.View.AsContiguous(), Ctx = ctx, Embedding = embedding, Stride = permutation });
        }

        return output;
    }

    /// <summary><c>accumulator += addend</c>, element-wise, in place.</summary>
    /// <exception cref="ArgumentException">Shapes or devices differ.</exception>
    public static void AddInPlace<T>(DeviceTensor<T> accumulator, DeviceTensor<T> addend)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(accumulator);
        ArgumentNullException.ThrowIfNull(addend);
        if (!accumulator.HasShape([.. addend.Shape]))
        {
            Guard.Throw(nameof(addend), $"addend has shape [{string.Join(", ", addend.Shape)}] but accumulator has [{string.Join(", ", accumulator.Shape)}]");
        }

        accumulator.Device.RequireSame(addend.Device, nameof(addend));
        ElementDispatch.Run<T, AddAction<T>>(new(accumulator, addend, accumulator));
    }
}
