namespace SparseAttention.Layouts;

/// <summary>The built-in patterns and custom layouts (docs/semantics.md §3 and §5).</summary>
public sealed partial class BlockLayout
{
    /// <summary>Dense causal: block <c>(i, j)</c> enabled when <c>j &lt;= i</c>.</summary>
    /// <exception cref="ArgumentException">ctx is not a multiple of blockSize, or blockSize is unsupported.</exception>
    public static BlockLayout All(int ctx, int blockSize, int heads)
    {
        var nb = CheckCommon(ctx, blockSize, heads);
        return Shared(blockSize, nb, heads, (i, j) => j <= i, DiagonalCausal(blockSize), "all");
    }

    /// <summary>Causal band: <c>j &lt;= i &amp;&amp; i - j &lt;= L / block</c>, elements <c>k &lt;= q &amp;&amp; k + L &gt; q</c>.</summary>
    /// <exception cref="ArgumentException">A parameter breaks the pattern's rules.</exception>
    public static BlockLayout Local(int ctx, int blockSize, int heads, int localCtx)
    {
        var nb = CheckCommon(ctx, blockSize, heads);
        Guard.Positive(localCtx, nameof(localCtx));
        Guard.MultipleOf(localCtx, nameof(localCtx), blockSize, nameof(blockSize));
        var bandBlocks = localCtx / blockSize;
        return Shared(blockSize, nb, heads, (i, j) => j <= i && i - j <= bandBlocks, (_, q, k) => k <= q && k + localCtx > q, $"local({localCtx})");
    }

    /// <summary>Strided, on the transposed sequence: <c>j &lt;= i &amp;&amp; j + (i % chunks) &gt;= i</c>.</summary>
    /// <exception cref="ArgumentException">A parameter breaks the pattern's rules.</exception>
    public static BlockLayout Strided(int ctx, int blockSize, int heads, int stride)
    {
        var nb = CheckCommon(ctx, blockSize, heads);
        Guard.Positive(stride, nameof(stride));
        Guard.MultipleOf(ctx, nameof(ctx), stride, nameof(stride));
        Guard.MultipleOf(ctx / stride, "ctx / stride", blockSize, nameof(blockSize));
        var chunks = ctx / stride / blockSize;
        return Shared(blockSize, nb, heads, (i, j) => j <= i && j + (i % chunks) >= i, DiagonalCausal(blockSize), $"strided({stride})");
    }

    /// <summary>Fixed: a local band of period <c>L / block</c> plus per-head summary columns, causal.</summary>
    /// <exception cref="ArgumentException">A parameter breaks the pattern's rules.</exception>
    public static BlockLayout Fixed(int ctx, int blockSize, int heads, int localCtx, int numVerts, int vertSize)
    {
        var nb = CheckCommon(ctx, blockSize, heads);
        Guard.Positive(localCtx, nameof(localCtx));
        Guard.Positive(numVerts, nameof(numVerts));
        Guard.Positive(vertSize, nameof(vertSize));
        Guard.MultipleOf(localCtx, nameof(localCtx), blockSize, nameof(blockSize));
        Guard.MultipleOf(heads, nameof(heads), numVerts, nameof(numVerts));
        var stride = localCtx / blockSize;
        if (vertSize > stride)
        {
            Guard.Throw(nameof(vertSize), $"vertSize {vertSize} must be at most localCtx / blockSize = {stride}");
        }

        Guard.MultipleOf(stride, "localCtx / blockSize", vertSize, nameof(vertSize));
        if (numVerts > stride / vertSize)
        {
            Guard.Throw(nameof(numVerts), $"numVerts {numVerts} must be at most (localCtx / blockSize) / vertSize = {stride / vertSize}");
        }

        var layoutHeads = numVerts == 1 ? 1 : heads;
        var enabled = new bool[layoutHeads * nb * nb];
        for (var h = 0; h < layoutHeads; h++)
        {
            // indices = [stride-1, ..., 0] cut into rows of vertSize; head h takes row h % numVerts.
            var row = h % numVerts;
            var verts = Enumerable.Range(0, vertSize).Select(c => stride - 1 - (row * vertSize + c)).ToHashSet();
            for (var i = 0; i < nb; i++)
            {
                for (var j = 0; j <= i; j++)
                {
                    enabled[(h * nb + i) * nb + j] = verts.Contains(j % stride) || i / stride == j / stride;
                }
            }
        }

        return new BlockLayout(blockSize, nb, heads, layoutHeads, enabled, DiagonalCausal(blockSize), $"fixed({localCtx},{numVerts},{vertSize})");
    }

    /// <summary>A custom layout shared by all heads; with no predicate every element of an enabled block is allowed.</summary>
    /// <param name="blocks">Square block matrix: <c>blocks[i, j]</c> enables query block i to key block j.</param>
    /// <param name="blockSize">Block edge in tokens.</param>
    /// <param name="heads">Number of heads.</param>
    /// <param name="elementPredicate">Optional <c>(head, q, k)</c> rule over absolute positions, evaluated when the plan is built.</param>
    /// <exception cref="ArgumentException">The matrix is not square, or blockSize is unsupported.</exception>
    public static BlockLayout Custom(bool[,] blocks, int blockSize, int heads, TokenMask? elementPredicate = null)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        return Custom([blocks], blockSize, heads, elementPredicate);
    }

    /// <summary>A custom layout with one block matrix per head (or a single one shared by all heads).</summary>
    /// <exception cref="ArgumentException">Matrices are missing, not square, differ in size or in enabled-block count.</exception>
    public static BlockLayout Custom(IReadOnlyList<bool[,]> blocksPerHead, int blockSize, int heads, TokenMask? elementPredicate = null)
    {
        ArgumentNullException.ThrowIfNull(blocksPerHead);
        Guard.BlockSize(blockSize);
        Guard.Positive(heads, nameof(heads));
        if (blocksPerHead.Count != 1 && blocksPerHead.Count != heads)
        {
            Guard.Throw(nameof(blocksPerHead), $"blocksPerHead has {blocksPerHead.Count} matrices: give 1 (shared) or heads = {heads}");
        }

        // A predicate may differ per head, so it gets per-head tables even when the block matrix is shared.
        var layoutHeads = elementPredicate is null ? blocksPerHead.Count : heads;
        var nb = blocksPerHead[0].GetLength(0);
        var enabled = new bool[layoutHeads * nb * nb];
        for (var h = 0; h < layoutHeads; h++)
        {
            var m = blocksPerHead[h % blocksPerHead.Count];
            if (m.GetLength(0) != nb || m.GetLength(1) != nb || nb == 0)
            {
                Guard.Throw(nameof(blocksPerHead), $"head {h}'s block matrix is {m.GetLength(0)}x{m.GetLength(1)}: every matrix must be the same non-empty square");
            }

            for (var i = 0; i < nb; i++)
            {
                for (var j = 0; j < nb; j++)
                {
                    enabled[(h * nb + i) * nb + j] = m[i, j];
                }
            }
        }

        return new BlockLayout(blockSize, nb, heads, layoutHeads, enabled, elementPredicate, "custom");
    }

    private static int CheckCommon(int ctx, int blockSize, int heads)
    {
        Guard.BlockSize(blockSize);
        Guard.Positive(ctx, nameof(ctx));
        Guard.Positive(heads, nameof(heads));
        Guard.MultipleOf(ctx, nameof(ctx), blockSize, nameof(blockSize));
        return ctx / blockSize;
    }

    private static TokenMask DiagonalCausal(int blockSize) => (_, q, k) => q / blockSize != k / blockSize || k <= q;

    private static BlockLayout Shared(int blockSize, int nb, int heads, Func<int, int, bool> blockRule, TokenMask element, string name)
    {
        var enabled = new bool[nb * nb];
        for (var i = 0; i < nb; i++)
        {
            for (var j = 0; j < nb; j++)
            {
                enabled[i * nb + j] = blockRule(i, j);
            }
        }

        return new BlockLayout(blockSize, nb, heads, 1, enabled, element, name);
    }
}
