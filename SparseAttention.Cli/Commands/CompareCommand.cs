using System.Text.Json;

namespace SparseAttention.Cli.Commands;

/// <summary>
/// Puts the attention rows of a <c>bench</c> log beside the peers' (<c>scripts/peers.py</c>, run right after on the same
/// card) and prints our achieved TFLOP/s (allowed entries only) and the ratios: peer time over ours, so above 1 means we
/// are faster. FlexAttention's time is its best block size.
/// </summary>
internal static class CompareCommand
{
    public static int Run(CommandLine line)
    {
        var ours = Lines(line.Text("bench") ?? "bench.log").Where(j => j.TryGetProperty("bench", out var b) && b.GetString() == "attention").ToList();
        var peers = Lines(line.Text("peers") ?? "peers.log").Where(j => j.TryGetProperty("case", out _)).ToList();
        Console.WriteLine("| case | dtype, B, H, N, D | ours fwd / fwd+bwd ms | ours TFLOP/s | Flex (block) fwd / fwd+bwd ms | Flex / ours | SDPA FA2 fwd / fwd+bwd ms | FA2 / ours | cuDNN / ours |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var our in ours)
        {
            int batch = our.GetProperty("batch").GetInt32(), heads = our.GetProperty("heads").GetInt32(), ctx = our.GetProperty("ctx").GetInt32(), headDim = our.GetProperty("headDim").GetInt32();
            var name = our.GetProperty("name").GetString()!;
            var dtype = our.GetProperty("dtype").GetString()!;
            double fwd = our.GetProperty("fwdMs").GetDouble(), both = our.GetProperty("fwdBwdMs").GetDouble();
            var peer = peers.FirstOrDefault(p => Mode(p.GetProperty("case").GetString()!) == name.Split(' ', ',')[0] && DType(p) == dtype
                && p.GetProperty("B").GetInt32() == batch && p.GetProperty("H").GetInt32() == heads && p.GetProperty("N").GetInt32() == ctx && p.GetProperty("D").GetInt32() == headDim);
            var row = $"| {name} | {dtype}, {batch}, {heads}, {ctx}, {headDim} | {fwd:F3} / {both:F3} | {our.GetProperty("fwdTflops").GetDouble():F0} / {our.GetProperty("fwdBwdTflops").GetDouble():F0} |";
            if (peer.ValueKind == JsonValueKind.Undefined)
            {
                Console.WriteLine(row + " no peer case | | | | |");
                continue;
            }

            double Get(string key) => peer.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : double.NaN;
            row += $" ({Get("flex_block")}) {Get("flex_fwd_ms"):F3} / {Get("flex_fwdbwd_ms"):F3} | {Get("flex_fwd_ms") / fwd:F2}x / {Get("flex_fwdbwd_ms") / both:F2}x |";
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

    // The shared peers.py wrote fp16 only and no dtype.
    private static string DType(JsonElement peer) => peer.TryGetProperty("dtype", out var dtype) ? dtype.GetString()! : "fp16";

    private static IEnumerable<JsonElement> Lines(string path) =>
        File.ReadLines(path).Where(l => l.StartsWith('{')).Select(l => JsonDocument.Parse(l).RootElement.Clone());
}
