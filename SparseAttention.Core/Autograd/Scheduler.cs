using SparseAttention.Tensors;

namespace SparseAttention.Autograd;

/// <summary>
/// Decides, as entries are recorded, which ones drop what they keep (and recompute in backward) and which recomputed
/// outputs are evicted, from a model of the bytes the tape keeps through forward and backward.
/// </summary>
/// <remarks>
/// The model replays backward over the entries: at each entry, the tape keeps what the entries before it keep (their
/// inputs only where they recompute), plus everything of the entries a recompute has brought back (the entry itself,
/// and the producers of evicted outputs it reads, which stay until their own backward). Tensors the caller made
/// (never produced on the tape) are not counted. Decisions only ever free memory, so they can be made during forward.
/// </remarks>
internal sealed class Scheduler(Tape tape, TapePolicy policy)
{
    private readonly Dictionary<IDeviceTensor, int> ids = new(ReferenceEqualityComparer.Instance);
    private readonly List<long> bytes = [];
    private readonly List<(int[] Kept, int[] Inputs, int Output, long Flops)> model = [];

    /// <summary>Applies the policy after <paramref name="entry"/> was recorded.</summary>
    public void Recorded(TapeEntry entry)
    {
        model.Add(([.. entry.Kept.Select(Id)], [.. entry.Inputs.Select(Id)], Id(entry.Output), Math.Max(entry.Flops, 1)));
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
                // The inputs stay so that a later, tighter moment can still choose to recompute this entry.
                entry.RetainInputs();
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
        var keepAll = Peak(new bool[entries.Count], new bool[entries.Count], retainInputs: false);
        var current = Peak(Recomputing(), Evicted(), policy.Kind == TapePolicyKind.Budget);
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
            if ((i + 1) % k != 0 && Evictable(entries[i]))
            {
                entries[i].EvictOutput();
            }
        }
    }

    // Greedy: while the expected peak is over budget, take the action that lowers it most per FLOP it adds (evicting a
    // recomputed entry's output adds none: that entry runs again anyway); stop when no action lowers it.
    private long FitBudget()
    {
        var entries = tape.Entries;
        var (recompute, evicted) = (Recomputing(), Evicted());
        var peak = Peak(recompute, evicted, retainInputs: true);
        (double Score, long Peak, Action Apply)? best = null;
        while (peak > policy.BudgetBytes)
        {
            best = null;
            for (var i = 0; i < entries.Count; i++)
            {
                var entry = entries[i];
                if (!recompute[i] && entry.HasSomethingToDrop)
                {
                    recompute[i] = true;
                    Consider(Peak(recompute, evicted, retainInputs: true), model[i].Flops, entry.SwitchToRecompute);
                    recompute[i] = false;
                }

                if (recompute[i] && !evicted[i] && Evictable(entry))
                {
                    evicted[i] = true;
                    Consider(Peak(recompute, evicted, retainInputs: true), 0, entry.EvictOutput);
                    evicted[i] = false;
                }
            }

            if (best is not { } chosen)
            {
                break;
            }

            chosen.Apply();
            (recompute, evicted, peak) = (Recomputing(), Evicted(), chosen.Peak);
        }

        return peak;

        void Consider(long candidate, long flops, Action apply)
        {
            var score = (double)(peak - candidate) / (flops + 1);
            if (candidate < peak && (best is null || score > best.Value.Score))
            {
                best = (score, candidate, apply);
            }
        }
    }

    /// <summary>The most bytes the tape keeps at once, through the end of forward and every step of backward.</summary>
    private long Peak(bool[] recompute, bool[] evicted, bool retainInputs)
    {
        var count = model.Count;
        var pending = new bool[count];
        long peak = 0;
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
                    if (retainInputs)
                    {
                        live.UnionWith(model[u].Inputs);
                    }
                }
            }

            for (var u = 0; u <= j; u++)
            {
                if (evicted[u] && !pending[u])
                {
                    live.Remove(model[u].Output);
                }
            }

            peak = Math.Max(peak, live.Sum(id => bytes[id]));
            pending[j] = false;
        }

        return peak;

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

    private bool Evictable(TapeEntry entry) =>
        entry.Recomputes && !entry.OutputEvicted && entry.Output.ReleasedByCaller && entry.Output.CanEvict && entry != tape.Entries[^1];

    private bool[] Recomputing() => [.. tape.Entries.Select(e => e.Recomputes)];

    private bool[] Evicted() => [.. tape.Entries.Select(e => e.OutputEvicted)];

    private long Bytes(IEnumerable<int> tensorIds) => tensorIds.Distinct().Sum(id => bytes[id]);

    private int Id(IDeviceTensor tensor)
    {
        if (!ids.TryGetValue(tensor, out var id))
        {
            id = ids.Count;
            ids[tensor] = id;
            bytes.Add(0);
        }

        // Whether the tape made it is known only once its producer is recorded, so the count is refreshed at every sight.
        bytes[id] = tape.Produced(tensor) ? tensor.SizeInBytes : 0;
        return id;
    }
}
