using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>
/// Decides, as entries are recorded, which ones drop what they keep (and recompute in backward) and which recomputed
/// outputs are evicted, from a model of the bytes the tape keeps through forward and backward.
/// </summary>
/// <remarks>
/// The model replays backward over the entries: at each entry, the tape keeps what the entries before it keep (their
/// inputs only where they recompute), plus everything of the entries a recompute has brought back (the entry itself,
/// its fresh output, and the producers of evicted outputs it reads, which stay until their own backward). The caller's
/// tensors (inputs no op made) are not counted; everything else an entry keeps is, its output or a tensor its forward
/// saved without returning it. Decisions only ever free memory, so they can be made during forward.
/// </remarks>
internal sealed class Scheduler(Tape tape, TapePolicy policy)
{
    private readonly Dictionary<IDeviceTensor, int> ids = new(ReferenceEqualityComparer.Instance);
    private readonly List<long> bytes = [];
    private readonly List<(int[] Kept, int[] Inputs, int Output, long Flops)> model = [];

    /// <summary>Applies the policy after <paramref name="entry"/> was recorded.</summary>
    public void Recorded(TapeEntry entry)
    {
        // Inputs first: a caller's tensor an op also saves must count as the caller's.
        int[] inputs = [.. entry.Inputs.Select(t => Id(t, input: true))];
        model.Add(([.. entry.Kept.Select(t => Id(t, input: false))], inputs, Id(entry.Output, input: false), Math.Max(entry.Flops, 1)));
        switch (policy.Kind)
        {
            case TapePolicyKind.RecomputeAll when entry.HasSomethingToDrop:
                entry.SwitchToRecompute();
                break;
            case TapePolicyKind.SquareRoot:
                entry.SwitchToRecompute();
                EvictSquareRoot();
                break;
            case TapePolicyKind.Budget:
                FitBudget();
                break;
        }
    }

    /// <summary>Last decisions with every output the caller has let go; an unmet budget throws before backward starts.</summary>
    public void BeforeBackward()
    {
        if (policy.Kind == TapePolicyKind.SquareRoot)
        {
            EvictSquareRoot();
        }

        if (policy.Kind == TapePolicyKind.Budget && FitBudget() is var peak && peak > policy.BudgetBytes)
        {
            throw new ArgumentException($"budget {policy.BudgetBytes:N0} bytes cannot be met: the smallest budget the scheduler meets for this step is {peak:N0} bytes", "policy");
        }
    }

    /// <summary>The decisions so far and what they cost and save.</summary>
    public ScheduleReport Report()
    {
        var entries = tape.Entries;
        var keepAll = Moments(new bool[entries.Count], new bool[entries.Count]).Max();
        var current = Moments(Recomputing(), Evicted()).Max();
        var rows = entries.Select((e, i) => new ScheduledEntry(e.Name, e.Recomputes, e.OutputEvicted, Bytes(model[i].Kept.Except(model[i].Inputs)), e.Flops)).ToList();
        return new ScheduleReport(policy, rows, keepAll, current, entries.Where(e => e.Recomputes).Sum(e => e.Flops));
    }

    // Chen et al.'s segments over the entries recorded so far: k = ⌈√n⌉, the output of every k-th entry is kept.
    private void EvictSquareRoot()
    {
        var entries = tape.Entries;
        var k = (int)Math.Ceiling(Math.Sqrt(entries.Count));
        for (var i = 0; i < entries.Count; i++)
        {
            if ((i + 1) % k != 0 && entries[i].Recomputes && OutputEvictable(entries[i]))
            {
                entries[i].EvictOutput();
            }
        }
    }

    // Greedy: while the expected peak is over budget, take the action that most lowers the bytes over budget, summed
    // over every moment, per FLOP it adds. The sum, not the peak, is what is lowered: where several moments share the
    // peak, no single action lowers the peak, yet each step towards it counts. An action is a recompute, the eviction
    // of a recomputed entry's output (no FLOPs: that entry runs again anyway), or both at once (an entry whose kept
    // tensors are only its inputs saves nothing by recomputing, but then its output can go). Stops when no action
    // lowers the excess; the peak then is the smallest this greedy reaches from here.
    private long FitBudget()
    {
        var entries = tape.Entries;
        var (recompute, evicted) = (Recomputing(), Evicted());
        var (peak, excess) = Measure(recompute, evicted);
        while (peak > policy.BudgetBytes)
        {
            (double Score, long Peak, long Excess, Action Apply)? best = null;
            for (var i = 0; i < entries.Count; i++)
            {
                var entry = entries[i];
                var canRecompute = !recompute[i] && entry.Inputs.All(t => t.IsHeld);
                if (canRecompute && entry.HasSomethingToDrop)
                {
                    Consider([i], [], entry.SwitchToRecompute);
                }

                if (!evicted[i] && OutputEvictable(entry))
                {
                    if (recompute[i])
                    {
                        Consider([], [i], entry.EvictOutput);
                    }
                    else if (canRecompute)
                    {
                        Consider([i], [i], () =>
                        {
                            entry.SwitchToRecompute();
                            entry.EvictOutput();
                        });
                    }
                }
            }

            if (best is not { } chosen)
            {
                break;
            }

            chosen.Apply();
            (recompute, evicted, peak, excess) = (Recomputing(), Evicted(), chosen.Peak, chosen.Excess);

            void Consider(int[] recomputes, int[] evicts, Action apply)
            {
                Array.ForEach(recomputes, i => recompute[i] = true);
                Array.ForEach(evicts, i => evicted[i] = true);
                var (candidatePeak, candidateExcess) = Measure(recompute, evicted);
                Array.ForEach(recomputes, i => recompute[i] = false);
                Array.ForEach(evicts, i => evicted[i] = false);
                var score = (double)(excess - candidateExcess) / (recomputes.Sum(i => model[i].Flops) + 1);
                if (candidateExcess < excess && (best is null || score > best.Value.Score || (score == best.Value.Score && candidatePeak < best.Value.Peak)))
                {
                    best = (score, candidatePeak, candidateExcess, apply);
                }
            }
        }

        return peak;
    }

    private (long Peak, long Excess) Measure(bool[] recompute, bool[] evicted)
    {
        var moments = Moments(recompute, evicted);
        return (moments.Max(), moments.Sum(bytes => Math.Max(0, bytes - policy.BudgetBytes)));
    }

    /// <summary>The bytes the tape keeps at every step of backward, the first also covering the end of forward; 0 for an empty tape.</summary>
    private List<long> Moments(bool[] recompute, bool[] evicted)
    {
        var count = model.Count;
        var pending = new bool[count];
        var moments = new List<long>(count + 1);
        for (var j = count - 1; j >= 0; j--)
        {
            foreach (var id in recompute[j] ? model[j].Inputs : model[j].Kept)
            {
                Restore(id, j);
            }

            pending[j] |= recompute[j];
            var live = new HashSet<int>();
            for (var u = 0; u <= j; u++)
            {
                if (pending[u])
                {
                    live.UnionWith(model[u].Kept);
                    live.UnionWith(model[u].Inputs);
                    live.Add(model[u].Output);
                }
                else
                {
                    live.UnionWith(recompute[u] ? model[u].Inputs : model[u].Kept);
                }
            }

            for (var u = 0; u <= j; u++)
            {
                if (evicted[u] && !pending[u])
                {
                    live.Remove(model[u].Output);
                }
            }

            moments.Add(live.Sum(id => bytes[id]));
            pending[j] = false;
        }

        moments.Add(0);
        return moments;

        void Restore(int id, int before)
        {
            var producer = model.FindIndex(0, before, m => m.Output == id);
            if (producer >= 0 && evicted[producer] && !pending[producer])
            {
                pending[producer] = true;
                foreach (var input in model[producer].Inputs)
                {
                    Restore(input, producer);
                }
            }
        }
    }

    // An output can go once the caller has let it go, unless it is the last entry's, which backward starts from.
    private bool OutputEvictable(TapeEntry entry) =>
        !entry.OutputEvicted && entry.Output.ReleasedByCaller && entry.Output.CanEvict && entry != tape.Entries[^1];

    private bool[] Recomputing() => [.. tape.Entries.Select(e => e.Recomputes)];

    private bool[] Evicted() => [.. tape.Entries.Select(e => e.OutputEvicted)];

    private long Bytes(IEnumerable<int> tensorIds) => tensorIds.Distinct().Sum(id => bytes[id]);

    // A tensor counts unless it is the caller's: an entry's input that no op on the tape made.
    private int Id(IDeviceTensor tensor, bool input)
    {
        if (!ids.TryGetValue(tensor, out var id))
        {
            id = ids.Count;
            ids[tensor] = id;
            bytes.Add(tensor.SizeInBytes);
        }

        if (input && !tape.Produced(tensor))
        {
            bytes[id] = 0;
        }

        return id;
    }
}
