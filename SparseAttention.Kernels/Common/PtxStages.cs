using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SparseAttention.Kernels.Common;

/// <summary>A rewrite of a kernel's PTX text between ILGPU's backend and the driver's loader.</summary>
/// <param name="ptx">The module as the previous stage left it.</param>
/// <returns>The rewritten module.</returns>
internal delegate string PtxStage(string ptx);

/// <summary>
/// The PTX rewrites kernels are loaded through (docs/architecture.md, "Kernel loading"). ILGPU passes every inline-asm
/// operand through a scalar <c>.local</c> depot and leaves it to ptxas to promote it back to a register, which ptxas
/// does only in simple kernels: with <c>cp.async</c> in a kernel every depot stayed in local memory (an 80-byte stack
/// frame and a loop six times slower, measured on an H200).
/// </summary>
internal static partial class PtxStages
{
    /// <summary>
    /// Turns each scalar depot whose address is taken once and used only by whole loads and stores into a register
    /// (the stores and loads become <c>mov</c>s); a depot used any other way is left as it is.
    /// </summary>
    public static string PromoteDepots(string ptx)
    {
        var lines = ptx.Split('\n');
        var depots = new Dictionary<string, Depot>(StringComparer.Ordinal);
        for (var i = 0; i < lines.Length; i++)
        {
            if (DepotDeclaration().Match(lines[i]) is { Success: true } declaration)
            {
                var name = declaration.Groups["name"].Value;
                depots[name] = new Depot(i, int.Parse(declaration.Groups["size"].Value, CultureInfo.InvariantCulture));
            }
        }

        if (depots.Count == 0)
        {
            return ptx;
        }

        var byAddress = new Dictionary<string, Depot>(StringComparer.Ordinal);
        foreach (var line in lines.Select((text, index) => (text, index)))
        {
            foreach (Match use in DepotName().Matches(line.text))
            {
                if (depots.TryGetValue(use.Value, out var depot) && line.index != depot.Declaration)
                {
                    depot.Uses++;
                    if (AddressMove().Match(line.text) is { Success: true } move && move.Groups["depot"].Value == use.Value)
                    {
                        depot.Address = move.Groups["register"].Value;
                        depot.AddressLine = line.index;
                    }
                }
            }
        }

        foreach (var depot in depots.Values.Where(d => d.Uses == 1 && d.Address is not null))
        {
            byAddress.TryAdd(depot.Address!, depot);
        }

        // Every line that names an address register must be a whole load or store of its depot's size.
        var rewrites = new Dictionary<int, (Depot Depot, Match Access)>();
        for (var i = 0; i < lines.Length; i++)
        {
            foreach (Match register in AddressRegister().Matches(lines[i]))
            {
                if (!byAddress.TryGetValue(register.Value, out var depot) || i == depot.AddressLine)
                {
                    continue;
                }

                var access = WholeAccess().Match(lines[i]);
                if (access.Success && access.Groups["address"].Value == register.Value && SizeOf(access.Groups["type"].Value) == depot.Size)
                {
                    rewrites[i] = (depot, access);
                }
                else
                {
                    depot.Promotable = false;
                }
            }
        }

        var promoted = byAddress.Values.Where(d => d.Promotable).ToList();
        if (promoted.Count == 0)
        {
            return ptx;
        }

        var prefix = "%depot";
        while (ptx.Contains(prefix, StringComparison.Ordinal))
        {
            prefix += "_";
        }

        for (var n = 0; n < promoted.Count; n++)
        {
            promoted[n].Register = $"{prefix}{promoted[n].Size * 8}_{n}";
        }

        foreach (var (line, (depot, access)) in rewrites)
        {
            if (!depot.Promotable)
            {
                continue;
            }

            var type = access.Groups["type"].Value;
            var indent = access.Groups["indent"].Value;
            lines[line] = access.Groups["op"].Value == "ld"
                ? $"{indent}mov.{type}\t{access.Groups["value"].Value}, {depot.Register};"
                : $"{indent}mov.{type}\t{depot.Register}, {access.Groups["value"].Value};";
        }

        var output = new StringBuilder(ptx.Length);
        var firstDeclaration = promoted.Min(d => d.Declaration);
        var removed = promoted.SelectMany(d => new[] { d.Declaration, d.AddressLine }).ToHashSet();
        for (var i = 0; i < lines.Length; i++)
        {
            if (i == firstDeclaration)
            {
                foreach (var size in promoted.Select(d => d.Size).Distinct())
                {
                    var names = promoted.Where(d => d.Size == size).Select(d => d.Register);
                    output.Append(CultureInfo.InvariantCulture, $"\t.reg .b{size * 8} {string.Join(", ", names)};\n");
                }
            }

            if (!removed.Contains(i))
            {
                output.Append(lines[i]);
                if (i < lines.Length - 1)
                {
                    output.Append('\n');
                }
            }
        }

        return output.ToString();
    }

    private static int SizeOf(string type) => type[1..] switch
    {
        "32" => 4,
        "64" => 8,
        _ => 0,
    };

    [GeneratedRegex(@"^\s*\.local\s+\.align\s+\d+\s+\.b8\s+(?<name>__local_depot\d+)\[(?<size>4|8)\];\s*$")]
    private static partial Regex DepotDeclaration();

    [GeneratedRegex(@"__local_depot\d+(?!\d)")]
    private static partial Regex DepotName();

    [GeneratedRegex(@"^\s*mov\.[bu]64\s+(?<register>%rd\d+),\s*(?<depot>__local_depot\d+);\s*$")]
    private static partial Regex AddressMove();

    [GeneratedRegex(@"%rd\d+(?!\d)")]
    private static partial Regex AddressRegister();

    [GeneratedRegex(@"^(?<indent>\s*)(?:(?<op>ld)\.local\.(?<type>[bfsu](?:32|64))\s+(?<value>%\w+),\s*\[(?<address>%rd\d+)\]|(?<op>st)\.local\.(?<type>[bfsu](?:32|64))\s+\[(?<address>%rd\d+)\],\s*(?<value>[-%\w.]+));\s*$")]
    private static partial Regex WholeAccess();

    private sealed class Depot(int declaration, int size)
    {
        public int Declaration { get; } = declaration;

        public int Size { get; } = size;

        public int Uses { get; set; }

        public string? Address { get; set; }

        public int AddressLine { get; set; } = -1;

        public bool Promotable { get; set; } = true;

        public string Register { get; set; } = string.Empty;
    }
}
