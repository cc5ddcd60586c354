using System.Globalization;
using System.Text.Json;
using SparseAttention.Layouts;
using SparseAttention.Visualization;

namespace SparseAttention.Cli.Commands;

/// <summary>Prints per-head statistics of a pattern's layout, as a table or JSON, and optionally draws it.</summary>
internal static class LayoutCommand
{
    public static int Run(CommandLine line)
    {
        var pattern = line.Pattern();
        int ctx = line.Int("ctx", 1024), block = line.Int("block", 32), heads = line.Int("heads", 4);
        var layout = pattern.ToLayout(ctx, block, heads);
        var rows = LayoutStatistics.For(layout);
        if (line.Text("image") is { } image)
        {
            LayoutPicture.SavePng(layout, image);
            Console.Error.WriteLine($"wrote {image}");
        }

        if (line.Has("json"))
        {
            var document = new { pattern = pattern.ToString(), ctx, block, heads, totalAllowedElements = rows.Sum(r => r.AllowedElements), perHead = rows };
            Console.WriteLine(JsonSerializer.Serialize(document, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
            return 0;
        }

        Console.WriteLine($"{pattern}  ctx {ctx}  block {block}  heads {heads}{(pattern.Kind == PatternKind.Strided ? "  (on the transposed sequence)" : string.Empty)}");
        Console.WriteLine("head  blocks  allowed elements  density  FLOPs saved vs dense causal");
        foreach (var row in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{row.Head,4}  {row.Blocks,6}  {row.AllowedElements,16:N0}  {row.Density,7:P2}  {row.FlopsSavedVersusCausal,27:P1}"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"total allowed elements over {heads} heads: {rows.Sum(r => r.AllowedElements):N0}"));
        return 0;
    }
}
