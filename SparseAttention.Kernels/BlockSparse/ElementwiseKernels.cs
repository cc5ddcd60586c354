using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

// Element-wise helpers for the tape: accumulating a gradient when one tensor feeds several ops.
// Versions:
//   v1  grid-stride add in fp32, rounded to the storage type.

/// <summary>Arguments of <c>Output = Left + Right</c>.</summary>
/// <typeparam name="T">Storage type.</typeparam>
public readonly struct AddParams<T>
    where T : unmanaged
{
    /// <summary>First addend.</summary>
    public ArrayView<T> Left { get; init; }

    /// <summary>Second addend.</summary>
    public ArrayView<T> Right { get; init; }

    /// <summary>Sum; may alias <see cref="Left"/>.</summary>
    public ArrayView<T> Output { get; init; }
}

/// <summary>The element-wise kernels and their launchers.</summary>
public static class ElementwiseKernels
{
    private const int GroupSize = 256;

    /// <summary>Adds two tensors of equal length.</summary>
    public static void Add<T, TElement>(Accelerator accelerator, in AddParams<T> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var groups = (int)Math.Clamp((p.Output.Length + GroupSize - 1) / GroupSize, 1, 65536);
        KernelLoader.Get<AddParams<T>>(accelerator, AddKernel<T, TElement>)(accelerator.DefaultStream, new KernelConfig(groups, GroupSize), p);
    }

    internal static void AddKernel<T, TElement>(AddParams<T> p)
        where T : unmanaged
        where TElement : struct, IElement<T>
    {
        var element = default(TElement);
        for (var i = Grid.GlobalIndex.X; i < p.Output.Length; i += Grid.DimX * Group.DimX)
        {
            p.Output[i] = element.FromFloat(element.ToFloat(p.Left[i]) + element.ToFloat(p.Right[i]));
        }
    }
}
