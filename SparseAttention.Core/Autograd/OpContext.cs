using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>What an op's forward keeps for its backward (PyTorch's <c>ctx</c>): one per run of the forward.</summary>
public sealed class OpContext
{
    private readonly List<IDeviceTensor> saved = [];
    private readonly bool[] needsGrad;
    private readonly bool retains;

    internal OpContext(IReadOnlyList<IDeviceTensor> inputs, bool[] needsGrad, bool retains)
    {
        Inputs = inputs;
        this.needsGrad = needsGrad;
        this.retains = retains;
    }

    /// <summary>The op's inputs, in the order it was given them.</summary>
    public IReadOnlyList<IDeviceTensor> Inputs { get; }

    /// <summary>Whether backward must return a gradient for input <paramref name="input"/> (PyTorch's <c>needs_input_grad</c>).</summary>
    public bool NeedsGrad(int input) => needsGrad[input];

    /// <summary>Keeps tensors for backward; the caller may dispose its own handles, the tape keeps the buffers alive.</summary>
    public void Save(params IDeviceTensor[] tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        foreach (var tensor in tensors)
        {
            ArgumentNullException.ThrowIfNull(tensor, nameof(tensors));
            saved.Add(tensor);
            if (retains)
            {
                tensor.Retain();
            }
        }
    }

    /// <summary>The <paramref name="index"/>-th saved tensor, in the order of <see cref="Save"/>.</summary>
    /// <exception cref="ArgumentException">Nothing was saved there, or it has another element type.</exception>
    public DeviceTensor<T> Saved<T>(int index)
        where T : unmanaged
    {
        if (index < 0 || index >= saved.Count || saved[index] is not DeviceTensor<T> tensor)
        {
            throw new ArgumentException($"saved tensor {index} is not a DeviceTensor<{typeof(T).Name}> ({saved.Count} saved)", nameof(index));
        }

        return tensor;
    }

    /// <summary>The saved tensors.</summary>
    internal IReadOnlyList<IDeviceTensor> SavedTensors => saved;

    /// <summary>Lets go of the saved tensors (after backward, or when the scheduler recomputes instead).</summary>
    internal void ReleaseSaved()
    {
        if (retains)
        {
            saved.ForEach(t => t.Release());
        }

        saved.Clear();
    }
}
