using System.Globalization;
using SparseAttention.Layouts;

namespace SparseAttention.Cli;

/// <summary>A command name and its <c>--key value</c> options; flags have no value.</summary>
internal sealed class CommandLine
{
    private readonly Dictionary<string, string?> options = new(StringComparer.OrdinalIgnoreCase);

    public string Command { get; private set; } = "demo";

    public static CommandLine Parse(string[] args)
    {
        var line = new CommandLine();
        var start = 0;
        if (args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal))
        {
            line.Command = args[0];
            start = 1;
        }

        for (var i = start; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"expected an option starting with --, got '{args[i]}'", nameof(args));
            }

            var hasValue = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal);
            line.options[args[i][2..]] = hasValue ? args[++i] : null;
        }

        return line;
    }

    public static int Usage(string problem)
    {
        Console.Error.WriteLine($"""
            {problem}
            usage: sparse-attention [demo]                        block-sparse vs dense attention on the default accelerator
                   sparse-attention layout --mode all|local|strided|fixed [--ctx 1024] [--block 32] [--heads 4]
                                           [--length L] [--verts 4] [--vert-size 1] [--json] [--image file.png]
                   sparse-attention bench [--section all|ops|attention|memory|recompute] [--case "all (causal)"] [--dtype fp16|bf16]
                                           GPU benchmark (CUDA device events); --case and --dtype keep the attention cases
                                           of that name and element type (one case to profile)
                   sparse-attention bench --section scheduler [--layers 24] [--ctx 16384] [--heads 16] [--head-dim 64] [--runs 5] [--pattern fixed|local] [--cpu]   tape policies: peak memory, fwd+bwd time
                   sparse-attention compare --bench bench.log --peers peers.log   our attention times beside peers.py's, with ratios
                   sparse-attention ptx [--out folder]                 every kernel's PTX, compiled without a GPU
                   sparse-attention fingerprint [--cpu]                hashes of every path's results on fixed inputs
            (sparse-attention is the .NET tool SparseAttention.Cli; from a checkout: dotnet run -c Release --project SparseAttention.Cli --; in a bundle: app/SparseAttention.Cli)
            """);
        return 2;
    }

    public bool Has(string name) => options.ContainsKey(name);

    public string? Text(string name) => options.GetValueOrDefault(name);

    public int Int(string name, int fallback) =>
        options.TryGetValue(name, out var value) && value is not null ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;

    /// <summary>The pattern named by <c>--mode</c> with its parameters (defaults: the original's example).</summary>
    public AttentionPattern Pattern() => (Text("mode") ?? "all").ToLowerInvariant() switch
    {
        "all" => AttentionPattern.All,
        "local" => AttentionPattern.Local(Int("length", 32)),
        "strided" => AttentionPattern.Strided(Int("length", 32)),
        "fixed" => AttentionPattern.Fixed(Int("length", 128), Int("verts", 4), Int("vert-size", 1)),
        var other => throw new ArgumentException($"mode '{other}' is not one of all, local, strided, fixed", "mode"),
    };
}
