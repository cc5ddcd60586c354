using ILGPU;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// The quad of log-sum-exp or delta this thread copies into each step's <see cref="StagedTerms"/>: which of the two,
/// its row at the walk's first query and its global address, worked out once before a walk so that a step only adds
/// its query (and holds one address, not two).
/// </summary>
internal readonly struct TermsSource
{
    private readonly ArrayView<float> terms;
    private readonly long row, address;

    /// <summary>
    /// The share of thread <c>Group.IdxX</c> of the terms of steps of <paramref name="tokens"/> queries, rows
    /// <paramref name="firstRow"/> + the step's query (also at the global-window byte addresses given, on CUDA).
    /// </summary>
    public TermsSource(ArrayView<float> logSumExp, long logSumExpAddress, ArrayView<float> delta, long deltaAddress, long firstRow, int tokens)
    {
        // Quads 0 .. tokens/4 - 1 are the log-sum-exp, the next as many delta; quad q lands at word 4q either way.
        var quads = tokens >> 2;
        Quad = Group.IdxX;
        Copies = Quad < 2 * quads;
        var isDelta = Quad >= quads;
        terms = isDelta ? delta : logSumExp;
        row = firstRow + ((isDelta ? Quad - quads : Quad) << 2);
        address = (isDelta ? deltaAddress : logSumExpAddress) + 4 * row;
    }

    /// <summary>The quad of the staged terms this thread copies.</summary>
    public int Quad { get; }

    /// <summary>Whether this thread copies a quad at all.</summary>
    public bool Copies { get; }

    /// <summary>The global byte address of the quad of the step at query <paramref name="token"/> (CUDA).</summary>
    public long Address(int token) => address + (4L * token);

    /// <summary>Term <paramref name="index"/> (0-3) of that quad (the CPU twins read it).</summary>
    public float Term(int token, int index) => terms[row + token + index];
}
