using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>
/// One recorded op or checkpoint segment. It keeps what its backward needs, or, once the scheduler makes it recompute,
/// only its inputs: backward then runs it again on a nested tape.
/// </summary>
internal abstract class TapeEntry(string name, IDeviceTensor[] inputs, IDeviceTensor output, bool[] needsGrad, long flops) : IDisposable
{
    private bool inputsRetained;

    public string Name { get; } = name;

    public IDeviceTensor[] Inputs { get; } = inputs;

    public IDeviceTensor Output { get; } = output;

    public bool[] NeedsGrad { get; } = needsGrad;

    public bool NeedsAnyGrad => NeedsGrad.Contains(true);

    /// <summary>Forward FLOPs: what recomputing costs.</summary>
    public long Flops { get; } = flops;

    /// <summary>The tensors kept for backward when not recomputing, as recorded (the scheduler's model reads them after a drop).</summary>
    public abstract IReadOnlyList<IDeviceTensor> Kept { get; }

    /// <summary>Whether recomputing frees anything beyond the inputs it still keeps.</summary>
    public bool HasSomethingToDrop => Kept.Any(t => !Inputs.Contains(t, ReferenceEqualityComparer.Instance));

    public bool Recomputes { get; private set; }

    public bool OutputEvicted { get; private set; }

    /// <summary>A recompute run ahead of this entry's backward (to restore its evicted output), with its fresh output.</summary>
    public (Tape Tape, IDeviceTensor Output)? Pending { get; set; }

    /// <summary>Keeps only the inputs (alive until this entry's backward), dropping the rest of what it kept.</summary>
    public void SwitchToRecompute()
    {
        inputsRetained = true;
        DistinctInputs().ForEach(t => t.Retain());
        DropKept();
        Recomputes = true;
    }

    public void EvictOutput()
    {
        Output.Evict();
        OutputEvicted = true;
    }

    /// <summary>Runs the forward again on <paramref name="nested"/>; returns the fresh output, bit-identical to <see cref="Output"/>.</summary>
    public abstract IDeviceTensor Rerun(Tape nested);

    /// <summary>Backward from the kept tensors; takes ownership of <paramref name="outputGrad"/>.</summary>
    public abstract void Backward(Gradients store, IDeviceTensor outputGrad);

    public void Dispose()
    {
        DropKept();
        if (inputsRetained)
        {
            inputsRetained = false;
            DistinctInputs().ForEach(t => t.Release());
        }

        if (Pending is var (tape, fresh))
        {
            tape.Dispose();
            fresh.Dispose();
            Pending = null;
        }
    }

    /// <summary>Releases the kept tensors; idempotent.</summary>
    protected abstract void DropKept();

    private List<IDeviceTensor> DistinctInputs() => Inputs.Distinct(ReferenceEqualityComparer.Instance).Cast<IDeviceTensor>().ToList();
}
