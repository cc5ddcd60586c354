namespace SparseAttention.Autograd;

/// <summary>The kinds of <see cref="TapePolicy"/>.</summary>
public enum TapePolicyKind
{
    /// <summary>Every op keeps what its backward needs; nothing is recomputed.</summary>
    KeepAll,

    /// <summary>Every op and segment keeps only its inputs and runs again in backward (checkpoint everything).</summary>
    RecomputeAll,

    /// <summary>Everything recomputes and only every ⌈√n⌉-th output is kept ("Training Deep Nets with Sublinear Memory Cost").</summary>
    SquareRoot,

    /// <summary>The fewest recomputed FLOPs that keep the tape's bytes under a budget (greedy by bytes freed per FLOP).</summary>
    Budget,
}

/// <summary>What a <see cref="Tape"/> keeps for backward and what it recomputes; every policy gives the same bits.</summary>
public sealed class TapePolicy
{
    private TapePolicy(TapePolicyKind kind, long budgetBytes) => (Kind, BudgetBytes) = (kind, budgetBytes);

    /// <summary>Keep everything (the default).</summary>
    public static TapePolicy KeepAll { get; } = new(TapePolicyKind.KeepAll, 0);

    /// <summary>Recompute every op and segment that has something to drop.</summary>
    public static TapePolicy RecomputeAll { get; } = new(TapePolicyKind.RecomputeAll, 0);

    /// <summary>Square-root segments: recompute everything, keep every ⌈√n⌉-th output of n recorded entries.</summary>
    public static TapePolicy SquareRoot { get; } = new(TapePolicyKind.SquareRoot, 0);

    /// <summary>Which kind of policy this is.</summary>
    public TapePolicyKind Kind { get; }

    /// <summary>The budget in bytes for <see cref="TapePolicyKind.Budget"/>, else 0.</summary>
    public long BudgetBytes { get; }

    /// <summary>Keep at most <paramref name="bytes"/> of tensors for backward (not counting the caller's own tensors).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bytes"/> is negative.</exception>
    public static TapePolicy Budget(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        return new(TapePolicyKind.Budget, bytes);
    }

    /// <summary>The kind, and the budget where there is one.</summary>
    public override string ToString() => Kind == TapePolicyKind.Budget ? $"Budget({BudgetBytes:N0} bytes)" : Kind.ToString();
}
