using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

public sealed partial class Tape
{
    /// <summary>Gradients of <c>sum(output * outputGrad)</c> for every tensor that fed the recorded ops and requires one.</summary>
    /// <param name="output">A tensor produced by an op or segment recorded on this tape.</param>
    /// <param name="outputGrad">Its gradient, same shape; it stays the caller's.</param>
    /// <returns>The gradients, owned by the caller; look them up with <see cref="Gradients.Of{T}"/>.</returns>
    /// <exception cref="InvalidOperationException">Backward already ran on this tape.</exception>
    /// <exception cref="ArgumentException">
    /// The output was not recorded here, the gradient's shape or device differs, or the policy's budget cannot be met
    /// (the message names the smallest budget the scheduler can meet); nothing has run then.
    /// </exception>
    public Gradients Backward<T>(DeviceTensor<T> output, DeviceTensor<T> outputGrad)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(outputGrad);
        ThrowIfConsumed();
        if (!producers.ContainsKey(output))
        {
            Guard.Throw(nameof(output), "output was not produced by an op recorded on this tape");
        }

        if (!outputGrad.HasShape([.. output.Shape]))
        {
            Guard.Throw(nameof(outputGrad), $"outputGrad has shape [{string.Join(", ", outputGrad.Shape)}] but output has [{string.Join(", ", output.Shape)}]");
        }

        output.Device.RequireSame(outputGrad.Device, nameof(outputGrad));
        scheduler?.BeforeBackward();
        consumed = true;
        var store = new Gradients(outputGrad);
        store.Accumulate(output, outputGrad);
        RunBackward(store);
        return store;
    }

    /// <summary>Runs every entry's backward in reverse, each releasing what it kept once it has run.</summary>
    internal void RunBackward(Gradients store)
    {
        for (var i = entries.Count - 1; i >= 0; i--)
        {
            var entry = entries[i];
            if (store.Take(entry.Output) is { } grad)
            {
                if (!entry.NeedsAnyGrad)
                {
                    store.Release(grad);
                }
                else if (entry.Recomputes)
                {
                    BackwardByRecompute(entry, grad, store);
                }
                else
                {
                    entry.Kept.ToList().ForEach(Materialize);
                    entry.Backward(store, grad);
                }
            }

            entry.Dispose();
        }

        entries.Clear();
    }

    // The entry's forward runs again on a nested tape (unless a restore already did), whose backward is seeded with the
    // gradient of the original output: the fresh output holds the same bits.
    private void BackwardByRecompute(TapeEntry entry, IDeviceTensor grad, Gradients store)
    {
        var (nested, fresh) = entry.Pending ?? Rerun(entry);
        entry.Pending = null;
        store.Accumulate(fresh, grad);
        nested.RunBackward(store);
        nested.Dispose();
        fresh.Dispose();
    }

    private (Tape Tape, IDeviceTensor Output) Rerun(TapeEntry entry)
    {
        entry.Inputs.ToList().ForEach(Materialize);
        var nested = new Tape(this);
        return (nested, entry.Rerun(nested));
    }

    /// <summary>Brings back an evicted output by running its producer ahead of that producer's own backward, which then reuses the run.</summary>
    private void Materialize(IDeviceTensor tensor)
    {
        if (producers.TryGetValue(tensor, out var producer) && producer.OutputEvicted && producer.Pending is null)
        {
            producer.Pending = Rerun(producer);
            tensor.ShareFrom(producer.Pending.Value.Output);
        }
    }
}
