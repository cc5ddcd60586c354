using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>
/// Records differentiable ops as they run forward; <see cref="Backward{T}"/> runs their backward functions in reverse,
/// releasing each op's saved tensors as soon as its backward has run. One backward per tape.
/// </summary>
public sealed class Tape : IDisposable
{
    private readonly List<ITapeEntry> entries = [];
    private bool consumed;

    /// <summary>Number of ops recorded.</summary>
    public int Count => entries.Count;

    /// <summary>Gradients of <c>sum(output * outputGrad)</c> for every tensor that fed the recorded ops.</summary>
    /// <param name="output">A tensor produced by an op recorded on this tape.</param>
    /// <param name="outputGrad">Its gradient, same shape; it stays the caller's.</param>
    /// <returns>The gradients, owned by the caller; look them up with <see cref="Gradients{T}.Of"/>.</returns>
    /// <exception cref="InvalidOperationException">Backward already ran on this tape.</exception>
    /// <exception cref="ArgumentException">The output was not recorded here, or the gradient's shape or device differs.</exception>
    public Gradients<T> Backward<T>(DeviceTensor<T> output, DeviceTensor<T> outputGrad)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(outputGrad);
        if (consumed)
        {
            throw new InvalidOperationException("Backward was already called on this tape: record the forward again for a second backward");
        }

        if (!entries.Any(e => ReferenceEquals(e.Output, output)))
        {
            Guard.Throw(nameof(output), "output was not produced by an op recorded on this tape");
        }

        if (!outputGrad.HasShape([.. output.Shape]))
        {
            Guard.Throw(nameof(outputGrad), $"outputGrad has shape [{string.Join(", ", outputGrad.Shape)}] but output has [{string.Join(", ", output.Shape)}]");
        }

        output.Device.RequireSame(outputGrad.Device, nameof(outputGrad));
        consumed = true;
        var store = new Gradients<T>(outputGrad);
        store.Seed(output);
        for (var i = entries.Count - 1; i >= 0; i--)
        {
            var entry = (TapeEntry<T>)entries[i];
            if (store.Take(entry.Output) is { } grad)
            {
                var inputGrads = entry.Backward(grad);
                store.Release(grad);
                for (var input = 0; input < entry.Inputs.Length; input++)
                {
                    store.Accumulate(entry.Inputs[input], inputGrads[input]);
                }
            }

            entry.Dispose();
        }

        entries.Clear();
        return store;
    }

    /// <summary>Releases every saved tensor of ops whose backward never ran.</summary>
    public void Dispose()
    {
        foreach (var entry in entries)
        {
            entry.Dispose();
        }

        entries.Clear();
    }

    /// <summary>Adds an op; called by the ops as they run forward.</summary>
    internal void Record<T>(TapeEntry<T> entry)
        where T : unmanaged
    {
        if (consumed)
        {
            throw new InvalidOperationException("this tape already ran backward: use a new tape");
        }

        entries.Add(entry);
    }

    /// <summary>Frees <paramref name="intermediate"/> with the last recorded op, once that op's backward has run.</summary>
    internal void ReleaseWithLast(IDisposable intermediate) => entries[^1].Adopt(intermediate);
}

/// <summary>An op on the tape, independent of element type.</summary>
internal interface ITapeEntry : IDisposable
{
    /// <summary>The tensor the op produced.</summary>
    object Output { get; }

    /// <summary>Adds something to free with the entry's saved tensors.</summary>
    void Adopt(IDisposable intermediate);
}

/// <summary>One recorded op: its inputs, its output, and how to turn the output's gradient into the inputs'.</summary>
/// <typeparam name="T">Element type.</typeparam>
internal sealed class TapeEntry<T>(DeviceTensor<T>[] inputs, DeviceTensor<T> output, Func<DeviceTensor<T>, DeviceTensor<T>[]> backward, IDisposable? saved) : ITapeEntry
    where T : unmanaged
{
    public DeviceTensor<T>[] Inputs { get; } = inputs;

    public DeviceTensor<T> Output { get; } = output;

    object ITapeEntry.Output => Output;

    /// <summary>Gradients of the inputs, one per input, newly allocated.</summary>
    public DeviceTensor<T>[] Backward(DeviceTensor<T> outputGrad) => backward(outputGrad);

    private readonly List<IDisposable> adopted = [];

    public void Adopt(IDisposable intermediate) => adopted.Add(intermediate);

    public void Dispose()
    {
        saved?.Dispose();
        adopted.ForEach(a => a.Dispose());
        adopted.Clear();
    }
}
