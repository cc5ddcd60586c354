using System.Text.RegularExpressions;

namespace SparseAttention.Kernels.Common;

/// <summary>A kernel's launch bounds, CUDA's <c>__launch_bounds__</c>, which ILGPU does not write.</summary>
internal static partial class PtxStages
{
    /// <summary>
    /// Tells ptxas that the module's one kernel runs in groups of <paramref name="threads"/> threads and that
    /// <paramref name="groups"/> of them should fit on a multiprocessor: it caps the kernel's registers to fit them
    /// (<c>.maxntid</c>, <c>.minnctapersm</c> between the parameter list and the body). A module of more or fewer than
    /// one kernel, or one that has bounds already, is left as it is.
    /// </summary>
    public static PtxStage LaunchBounds(int threads, int groups) => ptx =>
    {
        var entries = EntryParameters().Matches(ptx);
        if (entries.Count != 1 || ptx.Contains(".maxntid", StringComparison.Ordinal) || ptx.Contains(".minnctapersm", StringComparison.Ordinal))
        {
            return ptx;
        }

        var end = entries[0].Index + entries[0].Length;
        return string.Concat(ptx.AsSpan(0, end), $".maxntid {threads}, 1, 1\n.minnctapersm {groups}\n", ptx.AsSpan(end));
    };

    // A kernel's entry and its parameter list, up to the line after the closing parenthesis.
    [GeneratedRegex(@"\.entry\s+\w+\s*\([^)]*\)[ \t]*\n")]
    private static partial Regex EntryParameters();
}
