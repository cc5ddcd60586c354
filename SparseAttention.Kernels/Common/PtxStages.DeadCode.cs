using System.Globalization;
using System.Text.RegularExpressions;

namespace SparseAttention.Kernels.Common;

// ILGPU resolves CudaAsm.IsSupported only when it writes PTX, so every "if (CudaAsm.IsSupported)" reaches the driver as
// "mov.pred %p, 1; @%p bra L" with the CPU twin (the mma emulation and its bar.warp.sync among it) in the fall-through.
// ptxas 12.4 drops that code without a trace, but the H200 driver's JIT (580) put a WARPSYNC before every HMMA of the
// fused kernels: 98 per 64-key step of the forward, an eighth of its instructions.
internal static partial class PtxStages
{
    /// <summary>
    /// Folds branches on predicates set to a constant just before them and removes the code no path from the entry
    /// reaches; a module whose body it cannot read (not one function in one pair of braces) is left as it is.
    /// </summary>
    public static string DropDeadCode(string ptx)
    {
        var lines = ptx.Split('\n').ToList();
        var open = lines.FindIndex(line => line.Trim() == "{");
        var close = lines.FindLastIndex(line => line.Trim() == "}");
        if (open < 0 || close <= open || lines.Skip(open + 1).Take(close - open - 1).Any(line => line.Trim() is "{" or "}"))
        {
            return ptx;
        }

        FoldConstantBranches(lines, open, close);
        var body = lines.GetRange(open + 1, close - open - 1);
        var labels = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < body.Count; i++)
        {
            if (Label().Match(body[i]) is { Success: true } label)
            {
                labels[label.Groups["name"].Value] = i;
            }
        }

        // A label named anywhere but in a plain branch (brx.idx and its .branchtargets, a comment, two statements on a
        // line) could be reached in a way this walk does not follow: leave such a module as it is.
        for (var i = 0; i < body.Count; i++)
        {
            if (!Label().IsMatch(body[i]) && !Branch().IsMatch(body[i]) && Identifier().Matches(body[i]).Any(name => labels.ContainsKey(name.Value)))
            {
                return ptx;
            }
        }

        // Walk from the body's first line: a label is reached through a branch or by falling into it; nothing after an
        // unconditional branch or return is, until the next label that something reaches.
        var reached = new bool[body.Count];
        var pending = new Stack<int>([0]);
        while (pending.Count > 0)
        {
            for (var i = pending.Pop(); i < body.Count && !reached[i]; i++)
            {
                reached[i] = true;
                if (Branch().Match(body[i]) is { Success: true } branch)
                {
                    if (!labels.TryGetValue(branch.Groups["target"].Value, out var target))
                    {
                        return ptx;
                    }

                    pending.Push(target);
                    if (!branch.Groups["predicate"].Success)
                    {
                        break;
                    }
                }
                else if (Return().IsMatch(body[i]))
                {
                    break;
                }
            }
        }

        var kept = body.Where((_, i) => reached[i] || Directive().IsMatch(body[i]));
        return string.Join('\n', lines.Take(open + 1).Concat(kept).Concat(lines.Skip(close)));
    }

    // "mov.pred %pN, 0|1;" followed by a branch on %pN, the predicate used nowhere else: an unconditional branch, or none.
    private static void FoldConstantBranches(List<string> lines, int open, int close)
    {
        var uses = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = open + 1; i < close; i++)
        {
            foreach (Match predicate in Predicate().Matches(lines[i]))
            {
                uses[predicate.Value] = uses.GetValueOrDefault(predicate.Value) + 1;
            }
        }

        for (var i = open + 1; i < close - 1; i++)
        {
            if (ConstantPredicate().Match(lines[i]) is not { Success: true } constant
                || Branch().Match(lines[i + 1]) is not { Success: true } branch
                || branch.Groups["predicate"].Value != constant.Groups["predicate"].Value
                || uses[constant.Groups["predicate"].Value] != 2)
            {
                continue;
            }

            var taken = (constant.Groups["value"].Value == "1") != branch.Groups["negated"].Success;
            lines[i] = string.Empty;
            lines[i + 1] = taken ? string.Create(CultureInfo.InvariantCulture, $"\tbra.uni\t{branch.Groups["target"].Value};") : string.Empty;
        }
    }

    [GeneratedRegex(@"^\s*(?<name>[A-Za-z_$][\w$]*):\s*$")]
    private static partial Regex Label();

    [GeneratedRegex(@"^\s*(?:@(?<negated>!)?(?<predicate>%p\d+)\s+)?bra(?:\.uni)?\s+(?<target>[A-Za-z_$][\w$]*)\s*;\s*$")]
    private static partial Regex Branch();

    [GeneratedRegex(@"^\s*(?:ret|exit)(?:\.uni)?\s*;\s*$")]
    private static partial Regex Return();

    [GeneratedRegex(@"^\s*\.")]
    private static partial Regex Directive();

    [GeneratedRegex(@"[A-Za-z_$%][\w$]*")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"%p\d+(?!\d)")]
    private static partial Regex Predicate();

    [GeneratedRegex(@"^\s*mov\.pred\s+(?<predicate>%p\d+),\s*(?<value>[01])\s*;\s*$")]
    private static partial Regex ConstantPredicate();
}
