using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>A recorded op: its forward (for a recompute), its backward and the context its forward saved into.</summary>
internal sealed class OpEntry<TOut>(
    string name,
    IDeviceTensor[] inputs,
    DeviceTensor<TOut> output,
    bool[] needsGrad,
    long flops,
    OpContext context,
    Func<OpContext, DeviceTensor<TOut>> forward,
    Func<OpContext, DeviceTensor<TOut>, IDeviceTensor?[]> backward)
    : TapeEntry(name, inputs, output, needsGrad, flops)
    where TOut : unmanaged
{
    private readonly IDeviceTensor[] kept = [.. context.SavedTensors.Distinct(ReferenceEqualityComparer.Instance).Cast<IDeviceTensor>()];

    public override IReadOnlyList<IDeviceTensor> Kept => kept;

    public override IDeviceTensor Rerun(Tape nested) => nested.Apply(Inputs, forward, backward, Flops, Name);

    public override void Backward(Gradients store, IDeviceTensor outputGrad)
    {
        var grads = backward(context, (DeviceTensor<TOut>)outputGrad);
        store.Release(outputGrad);
        if (grads is null || grads.Length != Inputs.Length)
        {
            throw new InvalidOperationException($"the backward of op '{Name}' returned {grads?.Length ?? 0} gradients for {Inputs.Length} inputs");
        }

        for (var i = 0; i < grads.Length; i++)
        {
            if (grads[i] is not { } grad)
            {
                if (NeedsGrad[i])
                {
                    throw new InvalidOperationException($"the backward of op '{Name}' returned no gradient for input {i}, which needs one");
                }
            }
            else if (!NeedsGrad[i])
            {
                grad.Dispose();
            }
            else if (grad.ElementType != Inputs[i].ElementType || !grad.Shape.SequenceEqual(Inputs[i].Shape))
            {
                throw new InvalidOperationException($"the backward of op '{Name}' returned a {grad.ElementType.Name} [{string.Join(", ", grad.Shape)}] gradient for input {i}, a {Inputs[i].ElementType.Name} [{string.Join(", ", Inputs[i].Shape)}]");
            }
            else
            {
                store.Accumulate(Inputs[i], grad);
            }
        }
    }

    protected override void DropKept() => context.ReleaseSaved();
}
