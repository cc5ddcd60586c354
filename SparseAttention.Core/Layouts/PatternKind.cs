namespace SparseAttention.Layouts;

/// <summary>The attention patterns of the Sparse Transformer (docs/semantics.md §2 and §3).</summary>
public enum PatternKind
{
    /// <summary>Dense causal: every key at or before the query.</summary>
    All,

    /// <summary>A causal band of the last <c>L</c> positions.</summary>
    Local,

    /// <summary>Every <c>L</c>-th position back, computed by transposing the sequence.</summary>
    Strided,

    /// <summary>A local band plus fixed "summary" columns, differing per head.</summary>
    Fixed,
}
