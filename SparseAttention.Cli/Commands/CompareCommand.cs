using System.Text.Json;

namespace SparseAttention.Cli.Commands;

/// <summary>
/// Puts the attention rows of a <c>bench</c> log beside the peers' (<c>shared/bench/peers.py</c>, run right after on
/// the same card) and prints the ratios: peer time over ours, so above 1 means we are faster.
/// </summary>
internal static class CompareCommand
{
    public static int Run(CommandLine line)
    {
        var ours = Lines(line.Text("bench") ?? "bench.log").Where(j => j.TryGetProperty("bench", out var b) && b.GetString() == "attention").ToList();
        var peers = Lines(line.Text("peers") ?? "peers.log").Where(j => j.TryGetProperty("case", out _)).ToList();
        Console.WriteLine("| case | B, H, N, D | ours fwd / fwd+bwd ms | Flex fwd / fwd+bwd ms | Flex / ours | SDPA FA2 fwd / fwd+bwd ms | FA2 / ours | cuDNN / ours |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var our in ours)
        {
            int batch = our.GetProperty("batch").GetInt32(), heads = our.GetProperty("heads").GetInt32(), ctx = our.GetProperty("ctx").GetInt32(), headDim = our.GetProperty("headDim").GetInt32();
            var name = our.GetProperty("name").GetString()!;
            double fwd = our.GetProperty("fwdMs").GetDouble(), both = our.GetProperty("fwdBwdMs").GetDouble();
            var peer = peers.FirstOrDefault(p => Mode(p.GetProperty("case").GetString()!) == name.Split(' ', ',')[0]
                && p.GetProperty("B").GetInt32() == batch && p.GetProperty("H").GetInt32() == heads && p.GetProperty("N").GetInt32() == ctx && p.GetProperty("D").GetInt32() == headDim);
            var row = $"| {name} | {batch}, {heads}, {ctx}, {headDim} | {fwd:F3} / {both:F3} |";
            if (peer.ValueKind == JsonValueKind.Undefined)
            {
                Console.WriteLine(row + " no peer case | | | | |");
                continue;
            }

            double Get(string key) => peer.TryGetProperty(key, out var value) ? value.GetDouble() : double.NaN;
            row += $" {Get("flex_fwd_ms"):F3} / {Get("flex_fwdbwd_ms"):F3} | {Get("flex_fwd_ms") / fwd:F2}x / {Get("flex_fwdbwd_ms") / both:F2}x |";
            row += double.IsNaN(Get("sdpa_fa2_fwd_ms"))
                ? " | | |"
                : $" {Get("sdpa_fa2_fwd_ms"):F3} / {Get("sdpa_fa2_fwdbwd_ms"):F3} | {Get("sdpa_fa2_fwd_ms") / fwd:F2}x / {Get("sdpa_fa2_fwdbwd_ms") / both:F2}x | {Get("sdpa_cudnn_fwd_ms") / fwd:F2}x / {Get("sdpa_cudnn_fwdbwd_ms") / both:F2}x |";
            Console.WriteLine(row.Replace("NaN", "-", StringComparison.Ordinal));
        }

        return 0;
    }

    // peers.py names its cases "all-4k", "seed-example-all", "fixed-16k": the mode is the word that names a pattern.
    private static string Mode(string peerCase) =>
        peerCase.Split('-').FirstOrDefault(w => w is "all" or "local" or "strided" or "fixed") ?? peerCase;

    private static IEnumerable<JsonElement> Lines(string path) =>
        File.ReadLines(path).Where(l => l.StartsWith('{')).Select(l => JsonDocument.Parse(l).RootElement.Clone());
}
