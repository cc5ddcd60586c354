using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace SparseAttention.Kernels.Common;

/// <summary>Loads each kernel once per accelerator; compiling is far slower than launching.</summary>
internal static class KernelCache
{
    private static readonly ConditionalWeakTable<Accelerator, ConcurrentDictionary<Delegate, object>> Loaded = new();

    /// <summary>The launcher of <paramref name="kernel"/> on <paramref name="accelerator"/>, compiled on first use.</summary>
    public static Action<AcceleratorStream, KernelConfig, TParams> Get<TParams>(Accelerator accelerator, Action<TParams> kernel)
        where TParams : struct
    {
        var perAccelerator = Loaded.GetValue(accelerator, _ => new ConcurrentDictionary<Delegate, object>(DelegateMethodComparer.Instance));
        return (Action<AcceleratorStream, KernelConfig, TParams>)perAccelerator.GetOrAdd(kernel, _ => accelerator.LoadKernel(kernel));
    }

    private sealed class DelegateMethodComparer : IEqualityComparer<Delegate>
    {
        public static readonly DelegateMethodComparer Instance = new();

        public bool Equals(Delegate? x, Delegate? y) => x?.Method == y?.Method;

        public int GetHashCode(Delegate obj) => obj.Method.GetHashCode();
    }
}
