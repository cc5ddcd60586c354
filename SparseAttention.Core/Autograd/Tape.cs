using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>
/// Records differentiable ops as they run forward, this library's and the caller's (<see cref="Apply{TOut}"/>), of any
/// element types; <see cref="Backward{T}"/> runs their backward functions in reverse, releasing what each kept as soon
/// as its backward has run. A <see cref="TapePolicy"/> decides what is kept and what is recomputed. One backward per tape.
/// </summary>
public sealed partial class Tape : IDisposable
{
    private readonly List<TapeEntry> entries = [];
    private readonly Dictionary<IDeviceTensor, TapeEntry> producers = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<IDeviceTensor> produced = new(ReferenceEqualityComparer.Instance);
    private readonly Tape? parent;
    private readonly Scheduler? scheduler;
    private bool consumed;

    /// <summary>A tape that keeps and recomputes as <paramref name="policy"/> says (default <see cref="TapePolicy.KeepAll"/>).</summary>
    public Tape(TapePolicy? policy = null)
    {
        Policy = policy ?? TapePolicy.KeepAll;
        scheduler = new Scheduler(this, Policy);
    }

    // A child tape (a segment's ops, or a recompute in backward) keeps everything: its parent's scheduler decides for it as a whole.
    private Tape(Tape parent)
    {
        Policy = TapePolicy.KeepAll;
        this.parent = parent;
    }

    /// <summary>What this tape keeps and recomputes.</summary>
    public TapePolicy Policy { get; }

    /// <summary>Number of ops and segments recorded at the top level.</summary>
    public int Count => entries.Count;

    /// <summary>What the scheduler chose so far: which entries recompute, bytes saved, FLOPs added, the peak it expects.</summary>
    public ScheduleReport Schedule => scheduler?.Report() ?? throw new InvalidOperationException("a nested tape has no schedule of its own");

    /// <summary>Forward FLOPs of everything recorded.</summary>
    internal long Flops => entries.Sum(e => e.Flops);

    internal IReadOnlyList<TapeEntry> Entries => entries;

    /// <summary>Whether an op on this tape or on one of its children made <paramref name="tensor"/> (else it is the caller's own).</summary>
    internal bool Produced(IDeviceTensor tensor) => Root.produced.Contains(tensor);

    private Tape Root => parent?.Root ?? this;

    /// <summary>
    /// Runs a differentiable op of the caller's own and records it: <paramref name="forward"/> computes a new output and
    /// saves what <paramref name="backward"/> will read into its <see cref="OpContext"/>; <paramref name="backward"/> turns
    /// the output's gradient into one new gradient per input (null where <see cref="OpContext.NeedsGrad"/> is false).
    /// Both must be deterministic: a recompute runs <paramref name="forward"/> again and must get the same bits.
    /// </summary>
    /// <param name="inputs">Every tensor the op reads, of any element type; an input used twice gets its gradients summed.</param>
    /// <param name="forward">Computes the output from the inputs.</param>
    /// <param name="backward">Gradients of the inputs from the context and the output's gradient.</param>
    /// <param name="flops">Forward FLOPs, the cost the scheduler weighs against the bytes a recompute frees.</param>
    /// <param name="name">Shown in <see cref="Schedule"/>.</param>
    /// <returns>The output, the caller's to dispose; the tape keeps it alive while backward needs it.</returns>
    /// <exception cref="ArgumentException">An input is null, or <paramref name="flops"/> is negative.</exception>
    /// <exception cref="InvalidOperationException">Backward already ran, or forward returned no new tensor.</exception>
    public DeviceTensor<TOut> Apply<TOut>(IReadOnlyList<IDeviceTensor> inputs, Func<OpContext, DeviceTensor<TOut>> forward, Func<OpContext, DeviceTensor<TOut>, IDeviceTensor?[]> backward, long flops = 0, string? name = null)
        where TOut : unmanaged
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        if (inputs.Any(i => i is null))
        {
            Guard.Throw(nameof(inputs), "inputs must not contain null");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(flops);
        ThrowIfConsumed();
        IDeviceTensor[] given = [.. inputs];
        bool[] needsGrad = [.. given.Select(NeedsGrad)];
        var context = new OpContext(given, needsGrad, retains: true);
        var output = forward(context);
        if (output is null || given.Contains(output, ReferenceEqualityComparer.Instance))
        {
            context.ReleaseSaved();
            throw new InvalidOperationException($"the forward of op '{name ?? "op"}' must return a new tensor");
        }

        Record(new OpEntry<TOut>(name ?? "op", given, output, needsGrad, flops, context, forward, backward));
        return output;
    }

    /// <summary>
    /// Runs <paramref name="segment"/>, which records its ops on the tape it is given, as one checkpoint segment (PyTorch's
    /// <c>torch.utils.checkpoint</c>, the original's <c>recomputable</c>): when the policy makes it recompute, forward keeps
    /// only the segment's inputs and backward runs it again on a nested tape, then its backward.
    /// </summary>
    /// <param name="segment">Code that records ops on the given tape and returns a tensor one of them produced; it must be deterministic.</param>
    /// <param name="name">Shown in <see cref="Schedule"/>.</param>
    /// <returns>The segment's output, the caller's to dispose.</returns>
    /// <exception cref="InvalidOperationException">Backward already ran, or the segment returned a tensor no op of it produced.</exception>
    public DeviceTensor<T> Checkpoint<T>(Func<Tape, DeviceTensor<T>> segment, string? name = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(segment);
        ThrowIfConsumed();
        var child = new Tape(this);
        var output = segment(child);
        if (output is null || !child.producers.ContainsKey(output))
        {
            child.Dispose();
            throw new InvalidOperationException($"checkpoint segment '{name ?? "segment"}' must return a tensor produced by an op it recorded on the tape it was given");
        }

        IDeviceTensor[] inputs = [.. child.ExternalInputs()];
        Record(new SegmentEntry<T>(name ?? "segment", inputs, output, [.. inputs.Select(NeedsGrad)], child, segment));
        return output;
    }

    /// <summary>
    /// <see cref="Checkpoint{T}(Func{Tape, DeviceTensor{T}}, string?)"/> with its input passed, not captured (PyTorch's
    /// <c>checkpoint(function, input)</c>): a variable captured in a loop would have moved on by the time backward reruns it.
    /// </summary>
    public DeviceTensor<T> Checkpoint<TIn, T>(DeviceTensor<TIn> input, Func<Tape, DeviceTensor<TIn>, DeviceTensor<T>> segment, string? name = null)
        where TIn : unmanaged
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(segment);
        return Checkpoint(tape => segment(tape, input), name);
    }

    /// <summary>Releases every saved tensor of ops whose backward never ran.</summary>
    public void Dispose()
    {
        entries.ForEach(e => e.Dispose());
        entries.Clear();
    }

    /// <summary>Records a library op on <paramref name="tape"/>, or just runs its forward when there is none.</summary>
    internal static DeviceTensor<TOut> Run<TOut>(Tape? tape, string name, IDeviceTensor[] inputs, Func<OpContext, DeviceTensor<TOut>> forward, Func<OpContext, DeviceTensor<TOut>, IDeviceTensor?[]> backward, long flops)
        where TOut : unmanaged =>
        tape?.Apply(inputs, forward, backward, flops, name) ?? forward(new OpContext(inputs, new bool[inputs.Length], retains: false));

    /// <summary>The distinct tensors the recorded entries keep for backward.</summary>
    internal IEnumerable<IDeviceTensor> Kept() => entries.SelectMany(e => e.Kept).Distinct(ReferenceEqualityComparer.Instance).Cast<IDeviceTensor>();

    private IEnumerable<IDeviceTensor> ExternalInputs() =>
        entries.SelectMany(e => e.Inputs).Where(t => !producers.ContainsKey(t)).Distinct(ReferenceEqualityComparer.Instance).Cast<IDeviceTensor>();

    /// <summary>Whether a gradient must flow to <paramref name="tensor"/>: it requires one and, if an op made it, that op's inputs did.</summary>
    private bool NeedsGrad(IDeviceTensor tensor) =>
        tensor.RequiresGrad && (producers.TryGetValue(tensor, out var producer) ? producer.NeedsAnyGrad : parent?.NeedsGrad(tensor) ?? true);

    private void Record(TapeEntry entry)
    {
        entries.Add(entry);
        producers[entry.Output] = entry;
        Root.produced.Add(entry.Output);
        scheduler?.Recorded(entry);
    }

    private void ThrowIfConsumed()
    {
        if (consumed)
        {
            throw new InvalidOperationException("this tape already ran backward: use a new tape");
        }
    }
}
