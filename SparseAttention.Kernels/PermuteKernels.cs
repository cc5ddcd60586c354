using ILGPU;
using ILGPU.Runtime;

namespace SparseAttention.Kernels;

// Token permutation of strided attention: token t = a * L + b of each sequence moves to t' = b * (ctx / L) + a.
// The inverse is the same permutation with L replaced by ctx / L.
// Versions:
//   v1  one thread per element, grid-stride; reads coalesced along the embedding.

/// <summary>Arguments of the token permutation.</summary>
/// <typeparam name="T">Storage type.</typeparam>
public readonly struct PermuteParams<T>
    where T : unmanaged
{
    /// <summary>Source <c>[batch, ctx, embedding]</c>.</summary>
    public ArrayView<T> Input { get; init; }

    /// <summary>Destination, same shape.</summary>
    public ArrayView<T> Output { get; init; }

    /// <summary>Tokens per sequence.</summary>
    public int Ctx { get; init; }

    /// <summary>Features per token.</summary>
    public int Embedding { get; init; }

    /// <summary>The stride <c>L</c> (ctx / L for the inverse).</summary>
    public int Stride { get; init; }
}

/// <summary>The permutation kernel and its launcher.</summary>
public static class PermuteKernels
{
    private const int GroupSize = 256;

    /// <summary>Writes <c>Output[t'] = Input[t]</c> for every token.</summary>
    public static void Launch<T>(Accelerator accelerator, in PermuteParams<T> p)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var groups = (int)Math.Min((p.Input.Length + GroupSize - 1) / GroupSize, 65536);
        KernelCache.Get<PermuteParams<T>>(accelerator, Kernel)(accelerator.DefaultStream, new KernelConfig(groups, GroupSize), p);
    }

    internal static void Kernel<T>(PermuteParams<T> p)
        where T : unmanaged
    {
        var perSequence = (long)p.Ctx * p.Embedding;
        var outer = p.Ctx / p.Stride;
        for (var index = Grid.GlobalIndex.X; index < p.Input.Length; index += Grid.DimX * Group.DimX)
        {
            var sequence = index / perSequence;
            var token = (int)(index % perSequence / p.Embedding);
            var feature = index % p.Embedding;
            var target = token % p.Stride * outer + token / p.Stride;
            p.Output[(sequence * p.Ctx + target) * p.Embedding + feature] = p.Input[index];
        }
    }
}
