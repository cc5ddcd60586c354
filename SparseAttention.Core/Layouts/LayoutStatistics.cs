namespace SparseAttention.Layouts;

/// <summary>What one head of a layout costs and saves.</summary>
/// <param name="Head">Head index.</param>
/// <param name="Blocks">Enabled blocks.</param>
/// <param name="AllowedElements">Allowed (query, key) pairs.</param>
/// <param name="Density">Allowed pairs over the full <c>ctx x ctx</c> matrix.</param>
/// <param name="FlopsSavedVersusCausal">1 - enabled blocks / blocks of dense causal (<c>nb (nb + 1) / 2</c>): the matmul work a block kernel skips.</param>
public sealed record HeadStatistics(int Head, int Blocks, long AllowedElements, double Density, double FlopsSavedVersusCausal);

/// <summary>Per-head statistics of a layout, for the CLI's <c>layout</c> command and the notebooks.</summary>
public static class LayoutStatistics
{
    /// <summary>One row per head.</summary>
    public static IReadOnlyList<HeadStatistics> For(BlockLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var full = (double)layout.Ctx * layout.Ctx;
        var causalBlocks = layout.BlockCount * (layout.BlockCount + 1) / 2.0;
        return Enumerable.Range(0, layout.Heads)
            .Select(h =>
            {
                var allowed = layout.AllowedElements(h);
                return new HeadStatistics(h, layout.BlocksPerHead, allowed, allowed / full, 1 - layout.BlocksPerHead / causalBlocks);
            })
            .ToList();
    }
}
