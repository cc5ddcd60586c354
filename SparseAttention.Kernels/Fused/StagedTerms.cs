using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>
/// The log-sum-exp and delta of one query step of a transposed walk (dK, dV), staged in shared memory by
/// <c>cp.async</c> beside the step's Q and dO: a lane needs four columns of each of its score tiles, and the step's 32
/// or 64 queries are shared by the whole group.
/// </summary>
internal readonly struct StagedTerms
{
    private readonly ArrayView<uint> words;
    private readonly uint address, laneAddress;
    private readonly int firstWord, tokens, t;

    /// <summary>The terms of <paramref name="tokens"/> tokens from byte <paramref name="firstByte"/> of the dynamic shared memory <paramref name="dynamicWords"/>.</summary>
    public StagedTerms(ArrayView<uint> dynamicWords, int firstByte, int tokens)
    {
        words = dynamicWords;
        firstWord = firstByte >> 2;
        this.tokens = tokens;
        address = CudaAsm.IsSupported ? TensorCore.SharedBase() + (uint)firstByte : 0u;
        t = TensorCore.Keep(Warp.LaneIdx) & 3;
        laneAddress = address + (uint)(8 * t);
    }

    private StagedTerms(in StagedTerms terms, int bytes)
    {
        words = terms.words;
        firstWord = terms.firstWord + (bytes >> 2);
        tokens = terms.tokens;
        address = terms.address + (uint)bytes;
        laneAddress = terms.laneAddress + (uint)bytes;
        t = terms.t;
    }

    /// <summary>Bytes of the terms of <paramref name="tokens"/> tokens.</summary>
    public static int Bytes(int tokens) => 8 * tokens;

    /// <summary>The same terms <paramref name="bytes"/> further on (negative: back): the other buffer.</summary>
    public StagedTerms Shifted(int bytes) => new(this, bytes);

    /// <summary>
    /// The group's first threads start copying the terms of rows <paramref name="firstRow"/>.. (also at the byte
    /// addresses given, on CUDA); they land at the next <see cref="AsyncCopy.WaitAll"/>, elsewhere at once.
    /// </summary>
    public void Stage(ArrayView<float> logSumExp, long logSumExpAddress, ArrayView<float> delta, long deltaAddress, long firstRow) =>
        Stage(SourceOf(logSumExp, logSumExpAddress, delta, deltaAddress, firstRow), 0);

    /// <summary>This thread's share of staging these terms, rows <paramref name="firstRow"/> + a step's query (the global-window addresses given, on CUDA).</summary>
    public TermsSource SourceOf(ArrayView<float> logSumExp, long logSumExpAddress, ArrayView<float> delta, long deltaAddress, long firstRow) =>
        new(logSumExp, logSumExpAddress, delta, deltaAddress, firstRow, tokens);

    /// <summary>The group's first threads start copying the terms of the step at query <paramref name="token"/> of <paramref name="source"/>'s walk.</summary>
    public void Stage(in TermsSource source, int token)
    {
        if (!source.Copies)
        {
            return;
        }

        if (CudaAsm.IsSupported)
        {
            AsyncCopy.Copy16(address + (uint)(16 * source.Quad), source.Address(token));
            return;
        }

        for (var i = 0; i < 4; i++)
        {
            words[firstWord + 4 * source.Quad + i] = Interop.FloatAsInt(source.Term(token, i));
        }
    }

    /// <summary>The log-sum-exp of this lane's columns 2t, 2t+1, 8+2t, 9+2t of the tile at step token <paramref name="column"/>.</summary>
    public void LogSumExp(int column, out float c0, out float c1, out float c8, out float c9) => Read(column, out c0, out c1, out c8, out c9);

    /// <summary>The delta of the same columns.</summary>
    public void Delta(int column, out float c0, out float c1, out float c8, out float c9) => Read(tokens + column, out c0, out c1, out c8, out c9);

    private void Read(int word, out float c0, out float c1, out float c8, out float c9)
    {
        if (CudaAsm.IsSupported)
        {
            var at = laneAddress + (uint)(4 * word);
            TensorCore.LoadSharedPair(at, out c0, out c1);
            TensorCore.LoadSharedPair(at + 32, out c8, out c9);
            return;
        }

        var first = firstWord + word + 2 * t;
        c0 = Interop.IntAsFloat(words[first]);
        c1 = Interop.IntAsFloat(words[first + 1]);
        c8 = Interop.IntAsFloat(words[first + 8]);
        c9 = Interop.IntAsFloat(words[first + 9]);
    }
}
