using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>A checkpoint segment: the ops its code recorded on a child tape, which the scheduler may drop and rerun.</summary>
internal sealed class SegmentEntry<T>(string name, IDeviceTensor[] inputs, DeviceTensor<T> output, bool[] needsGrad, Tape child, Func<Tape, DeviceTensor<T>> segment)
    : TapeEntry(name, inputs, output, needsGrad, child.Flops)
    where T : unmanaged
{
    private readonly IDeviceTensor[] kept = [.. child.Kept()];
    private Tape? recorded = child;

    public override IReadOnlyList<IDeviceTensor> Kept => kept;

    public override IDeviceTensor Rerun(Tape nested) => segment(nested);

    public override void Backward(Gradients store, IDeviceTensor outputGrad)
    {
        store.Accumulate(Output, outputGrad);
        recorded!.RunBackward(store);
    }

    protected override void DropKept()
    {
        recorded?.Dispose();
        recorded = null;
    }
}
