using SparseAttention.Attention;
using SparseAttention.Layouts;

namespace SparseAttention.Tests.Support;

/// <summary>
/// The features every attention path is tested on, each the smallest problem that reaches its code on the CPU
/// accelerator (ctx 128 to 256, so CI stays in its time) and a wave-filling one on CUDA. Batches above 1 and head
/// counts that are not powers of two are spread over the features rather than given cases of their own.
/// </summary>
internal static class AttentionFeatures
{
    public const string All = "all";
    public const string Local = "local";
    public const string Strided = "strided";
    public const string Fixed = "fixed";
    public const string Dense = "dense";
    public const string DenseAutoregress = "dense autoregress";
    public const string Custom = "custom";
    public const string AutoregressInsideTile = "autoregress inside a tile";
    public const string AutoregressOnTileBoundary = "autoregress on a tile boundary";
    public const string ExplicitScale = "explicit scale";
    public const string Recompute = "recompute";

    /// <summary>The case of <paramref name="feature"/> for the device kind <paramref name="device"/>.</summary>
    public static AttentionCase For(string feature, string device)
    {
        // CUDA: several waves of groups at ctx 512; the float64 references on the host are what take the time (the
        // demo checks the original's example, docs/semantics.md §11, at ctx 1024).
        var cpu = device == TestDevices.Cpu;
        var ctx = cpu ? 128 : 512;
        var headDim = cpu ? 32 : 64;
        var example = cpu ? new AttentionShape(2, ctx, 3, headDim) : new AttentionShape(2, ctx, 4, headDim);
        var small = new AttentionShape(1, ctx, 2, headDim);
        var odd = new AttentionShape(2, ctx, 3, headDim);
        return feature switch
        {
            All => AttentionCase.ForPattern(example, AttentionPattern.All, 32),
            Local => AttentionCase.ForPattern(cpu ? small : example, AttentionPattern.Local(cpu ? 64 : 96), 32),
            Strided => AttentionCase.ForPattern(cpu ? small : example, AttentionPattern.Strided(cpu ? 4 : 16), 32),
            Fixed => AttentionCase.ForPattern(cpu ? small : example, cpu ? AttentionPattern.Fixed(64, 2, 1) : AttentionPattern.Fixed(128, 4, 1), 32),
            Dense => AttentionCase.ForDense(feature, odd, (h, q, k) => k <= q && (q - k + h) % 3 != 1, AttentionOptions.Default),
            DenseAutoregress => AttentionCase.ForDense(feature, small, (h, q, k) => (q + 2 * k + h) % 5 != 0, new AttentionOptions { AutoregressAtKey = ctx / 2 - 24, Scale = 0.3 }),
            Custom => AttentionCase.ForLayout(feature, odd, CustomLayout(odd, cpu ? 32 : 64), AttentionOptions.Default),

            // The issue-11 case: full blocks under autoregressAtKey, inside a 16-token tile and on a tile boundary.
            AutoregressInsideTile => AttentionCase.ForLayout(feature, small, CustomLayout(small, 32), new AttentionOptions { AutoregressAtKey = ctx / 2 + 8 }),
            AutoregressOnTileBoundary => AttentionCase.ForLayout(feature, small, CustomLayout(small, 32), new AttentionOptions { AutoregressAtKey = ctx / 2 }),
            ExplicitScale => AttentionCase.ForPattern(small, AttentionPattern.All, 64, new AttentionOptions { Scale = 0.3 }),
            Recompute => AttentionCase.ForPattern(small, AttentionPattern.Local(64), 32, new AttentionOptions { Recompute = true }),
            _ => throw new ArgumentOutOfRangeException(nameof(feature), feature, "no such attention feature"),
        };
    }

    /// <summary>All of the causal pattern at one block size and head dim: two block rows on the CPU (three of 32).</summary>
    public static AttentionCase ForBlockAndHeadDim(string device, int blockSize, int headDim)
    {
        // Blocks of 32 get an odd block count: the fused kernels' groups own 64 tokens, so the last group's second
        // block row (column) lies past ctx and its warps have nothing to compute or store.
        var odd = blockSize == 32;
        var shape = device == TestDevices.Cpu
            ? new AttentionShape(1, (odd ? 3 : 2) * blockSize, 1, headDim)
            : new AttentionShape(1, odd ? 480 : 512, 3, headDim);
        return AttentionCase.ForPattern(shape, AttentionPattern.All, blockSize);
    }

    /// <summary>
    /// A bidirectional layout that differs per head: each head has one empty block row and one empty block column
    /// (so every head enables the same number of blocks); blocks in columns divisible by 3 are partial (an element
    /// predicate), every other enabled block is full.
    /// </summary>
    public static BlockLayout CustomLayout(AttentionShape shape, int blockSize)
    {
        var nb = shape.Ctx / blockSize;
        var perHead = new List<bool[,]>();
        for (var h = 0; h < shape.Heads; h++)
        {
            var blocks = new bool[nb, nb];
            int emptyRow = (1 + h) % nb, emptyColumn = (2 + (2 * h)) % nb;
            for (var i = 0; i < nb; i++)
            {
                for (var j = 0; j < nb; j++)
                {
                    blocks[i, j] = i != emptyRow && j != emptyColumn;
                }
            }

            perHead.Add(blocks);
        }

        return BlockLayout.Custom(perHead, blockSize, shape.Heads, (h, q, k) => k / blockSize % 3 != 0 || (q + (3 * k) + h) % 7 != 0);
    }
}
