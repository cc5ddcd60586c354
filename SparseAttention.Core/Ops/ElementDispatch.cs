using ILGPU;
using SparseAttention.Kernels.Common;
using SparseAttention.Tensors;

namespace SparseAttention.Ops;

/// <summary>A kernel call generic in the storage type and its conversion trait.</summary>
internal interface IElementAction
{
    /// <summary>Runs the call with storage <typeparamref name="TStorage"/> converted by <typeparamref name="TElement"/>.</summary>
    void Run<TStorage, TElement>()
        where TStorage : unmanaged
        where TElement : struct, IElement<TStorage>;

    /// <summary>Runs the call for 16-bit storage (Half, BFloat16), whose trait also spells mma; ops with one kernel for every type run the generic one.</summary>
    void RunTensorCore<TElement>()
        where TElement : struct, IElement<ushort>, IMmaElement => Run<ushort, TElement>();
}

/// <summary>Maps a host element type to the kernels' storage type and trait: float/Fp32, Half/Fp16, BFloat16/Bf16.</summary>
internal static class ElementDispatch
{
    /// <summary>Runs <paramref name="action"/> specialised for <typeparamref name="T"/>.</summary>
    public static void Run<T, TAction>(TAction action)
        where TAction : IElementAction
    {
        if (typeof(T) == typeof(float))
        {
            action.Run<float, Fp32>();
        }
        else if (typeof(T) == typeof(System.Half))
        {
            action.RunTensorCore<Fp16>();
        }
        else if (typeof(T) == typeof(BFloat16))
        {
            action.RunTensorCore<Bf16>();
        }
        else
        {
            throw new NotSupportedException($"element type {typeof(T).Name} is not supported: use float, Half or BFloat16");
        }
    }

    /// <summary>The tensor's data reinterpreted as the kernels' storage type (same bits, no copy).</summary>
    public static ArrayView<TStorage> As<T, TStorage>(DeviceTensor<T> tensor)
        where T : unmanaged
        where TStorage : unmanaged => tensor.View.AsContiguous().Cast<TStorage>();
}
