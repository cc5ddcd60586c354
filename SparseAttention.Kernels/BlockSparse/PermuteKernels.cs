using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.BlockSparse;

// Token permutation of strided attention: token t = a * L + b of each sequence moves to t' = b * (ctx / L) + a.
// The inverse is the same permutation with L replaced by ctx / L.
// Versions:
//   v1  one thread per element, grid-stride; reads coalesced along the embedding. 64-bit divisions per element:
//       about 110 GB/s on the H200, most of the strided attention's time once the attention itself was fused.
//   v2  one group per token, no divisions in the loop; the caller moves 4-byte words where the token's bytes allow.
//   v3  the caller moves 16-byte quads where the token's bytes and the tensors' starts allow (4-byte words else).

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

    /// <summary>Elements per token.</summary>
    public int Embedding { get; init; }

    /// <summary>The stride <c>L</c> (ctx / L for the inverse).</summary>
    public int Stride { get; init; }
}

/// <summary>The permutation kernel and its launcher.</summary>
public static class PermuteKernels
{
    /// <summary>Writes <c>Output[t'] = Input[t]</c> for every token.</summary>
    public static void Launch<T>(Accelerator accelerator, in PermuteParams<T> p)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var tokens = (int)(p.Input.Length / p.Embedding);
        var groupSize = Math.Min(256, (p.Embedding + 31) / 32 * 32);
        KernelLoader.Get<PermuteParams<T>>(accelerator, Kernel)(accelerator.DefaultStream, new KernelConfig(tokens, groupSize), p);
    }

    internal static void Kernel<T>(PermuteParams<T> p)
        where T : unmanaged
    {
        var sequence = Grid.IdxX / p.Ctx;
        var token = Grid.IdxX % p.Ctx;
        var target = token % p.Stride * (p.Ctx / p.Stride) + token / p.Stride;
        long from = (long)Grid.IdxX * p.Embedding, to = ((long)sequence * p.Ctx + target) * p.Embedding;
        for (var i = Group.IdxX; i < p.Embedding; i += Group.DimX)
        {
            p.Output[to + i] = p.Input[from + i];
        }
    }
}
