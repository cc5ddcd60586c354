using System.Globalization;
using System.Text;

namespace SparseAttention.Autograd;

/// <summary>One recorded op or segment as the scheduler left it.</summary>
/// <param name="Name">The name it was recorded with.</param>
/// <param name="Recomputes">Whether backward runs it again instead of reading what it kept.</param>
/// <param name="OutputEvicted">Whether its output was freed during forward and is rebuilt in backward.</param>
/// <param name="DroppableBytes">Bytes it keeps beyond its inputs when not recomputing.</param>
/// <param name="Flops">Its forward FLOPs, the cost of one recompute.</param>
public sealed record ScheduledEntry(string Name, bool Recomputes, bool OutputEvicted, long DroppableBytes, long Flops);

/// <summary>What a tape's scheduler chose, and the bytes it expects the tape to keep at most.</summary>
/// <param name="Policy">The policy it followed.</param>
/// <param name="Entries">Every top-level op and segment, in recording order.</param>
/// <param name="KeepAllPeakBytes">The most bytes the tape would keep if nothing were recomputed.</param>
/// <param name="ExpectedPeakBytes">The most bytes it expects the tape to keep with these choices, through forward and backward.</param>
/// <param name="FlopsAdded">Forward FLOPs that backward runs again.</param>
public sealed record ScheduleReport(TapePolicy Policy, IReadOnlyList<ScheduledEntry> Entries, long KeepAllPeakBytes, long ExpectedPeakBytes, long FlopsAdded)
{
    /// <summary>Bytes the choices save against keeping everything.</summary>
    public long BytesSaved => KeepAllPeakBytes - ExpectedPeakBytes;

    /// <summary>A summary line and one line per entry.</summary>
    public override string ToString()
    {
        var text = new StringBuilder(string.Create(CultureInfo.InvariantCulture,
            $"{Policy}: {Entries.Count(e => e.Recomputes)} of {Entries.Count} recompute, {Entries.Count(e => e.OutputEvicted)} outputs evicted; expected peak {ExpectedPeakBytes:N0} bytes (keep-all {KeepAllPeakBytes:N0}, saved {BytesSaved:N0}); {FlopsAdded:N0} FLOPs added"));
        foreach (var (e, i) in Entries.Select((e, i) => (e, i)))
        {
            text.Append(CultureInfo.InvariantCulture, $"\n  {i,3} {e.Name,-16} {(e.Recomputes ? "recompute" : "keep"),-9} {(e.OutputEvicted ? "evicted" : ""),-7} {e.DroppableBytes,14:N0} B {e.Flops,16:N0} FLOPs");
        }

        return text.ToString();
    }
}
