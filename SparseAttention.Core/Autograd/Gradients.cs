using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>The gradients a backward pass produced, keyed by tensor identity, of any element type. Owns them until disposed.</summary>
public sealed class Gradients : IDisposable
{
    private readonly Dictionary<IDeviceTensor, IDeviceTensor> byTensor = new(ReferenceEqualityComparer.Instance);
    private readonly IDeviceTensor callerGrad;

    internal Gradients(IDeviceTensor callerGrad) => this.callerGrad = callerGrad;

    /// <summary>The gradient of <paramref name="tensor"/>.</summary>
    /// <exception cref="ArgumentException">No gradient flowed to <paramref name="tensor"/>.</exception>
    public DeviceTensor<T> Of<T>(DeviceTensor<T> tensor)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (!byTensor.TryGetValue(tensor, out var grad))
        {
            Guard.Throw(nameof(tensor), "no gradient flowed to this tensor: it fed no recorded op, or it does not require one");
        }

        return (DeviceTensor<T>)grad;
    }

    /// <summary>Whether <paramref name="tensor"/> received a gradient.</summary>
    public bool Contains(IDeviceTensor tensor) => byTensor.ContainsKey(tensor);

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
    internal IDeviceTensor? Take(IDeviceTensor output) => byTensor.Remove(output, out var grad) ? grad : null;

    /// <summary>Adds <paramref name="grad"/> to the gradient of <paramref name="tensor"/>, taking ownership of it.</summary>
    internal void Accumulate(IDeviceTensor tensor, IDeviceTensor grad)
    {
        if (!byTensor.TryGetValue(tensor, out var existing))
        {
            byTensor[tensor] = grad;
        }
        else if (ReferenceEquals(existing, callerGrad))
        {
            // The caller's output gradient is read, never written: the sum goes into the new gradient instead.
            grad.AddInPlace(existing);
            byTensor[tensor] = grad;
        }
        else
        {
            existing.AddInPlace(grad);
            Release(grad);
        }
    }

    /// <summary>Frees a gradient unless it is the caller's own output gradient.</summary>
    internal void Release(IDeviceTensor grad)
    {
        if (!ReferenceEquals(grad, callerGrad))
        {
            grad.Dispose();
        }
    }
}
