using SparseAttention.Ops;
using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>The gradients a backward pass produced, keyed by tensor identity. Owns them until disposed.</summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Gradients<T> : IDisposable
    where T : unmanaged
{
    private readonly Dictionary<DeviceTensor<T>, DeviceTensor<T>> byTensor = new(ReferenceEqualityComparer.Instance);
    private readonly DeviceTensor<T> callerGrad;

    internal Gradients(DeviceTensor<T> callerGrad) => this.callerGrad = callerGrad;

    /// <summary>The gradient of <paramref name="tensor"/>.</summary>
    /// <exception cref="ArgumentException">No recorded op received <paramref name="tensor"/>.</exception>
    public DeviceTensor<T> Of(DeviceTensor<T> tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (!byTensor.TryGetValue(tensor, out var grad))
        {
            Guard.Throw(nameof(tensor), "no gradient flowed to this tensor: it was not an input of a recorded op");
        }

        return grad;
    }

    /// <summary>Whether <paramref name="tensor"/> received a gradient.</summary>
    public bool Contains(DeviceTensor<T> tensor) => byTensor.ContainsKey(tensor);

    /// <summary>Frees every gradient.</summary>
    public void Dispose()
    {
        foreach (var grad in byTensor.Values)
        {
            Release(grad);
        }

        byTensor.Clear();
    }

    /// <summary>Removes and returns the gradient of an op's output, if any reached it.</summary>
    internal DeviceTensor<T>? Take(DeviceTensor<T> output) => byTensor.Remove(output, out var grad) ? grad : null;

    /// <summary>Adds <paramref name="grad"/> to the gradient of <paramref name="tensor"/>, taking ownership of it.</summary>
    internal void Accumulate(DeviceTensor<T> tensor, DeviceTensor<T> grad)
    {
        if (byTensor.TryGetValue(tensor, out var existing))
        {
            TensorOps.AddInPlace(existing, grad);
            Release(grad);
        }
        else
        {
            byTensor[tensor] = grad;
        }
    }

    /// <summary>Frees a gradient unless it is the caller's own output gradient.</summary>
    internal void Release(DeviceTensor<T> grad)
    {
        if (!ReferenceEquals(grad, callerGrad))
        {
            grad.Dispose();
        }
    }

    /// <summary>Seeds the backward pass with the caller's output gradient.</summary>
    internal void Seed(DeviceTensor<T> output) => byTensor[output] = callerGrad;
}
