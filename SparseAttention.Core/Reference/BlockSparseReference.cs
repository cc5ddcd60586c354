using SparseAttention.Planning;

namespace SparseAttention.Reference;

/// <summary>
/// Naive float64 host versions of the block-sparse ops (docs/semantics.md §6), the ground truth the kernels are tested against.
/// Dense arrays are <c>[batch, ctx, heads * headDim]</c>; weights <c>[batch, heads, blocks, block, block]</c>.
/// </summary>
public static class BlockSparseReference
{
    /// <summary><c>W[n,h,b] = left[block i] . right[block j]^T</c>.</summary>
    public static double[] QueryKey(ReadOnlySpan<double> left, ReadOnlySpan<double> right, BlockSparsePlan plan, AttentionShape shape)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var bs = plan.BlockSize;
        var weights = new double[WeightCount(plan, shape)];
        foreach (var (n, h, lh, b) in Blocks(plan, shape))
        {
            int i = plan.BlockRows[lh * plan.BlocksPerHead + b], j = plan.BlockColumns[lh * plan.BlocksPerHead + b];
            for (var r = 0; r < bs; r++)
            {
                for (var c = 0; c < bs; c++)
                {
                    double acc = 0;
                    for (var d = 0; d < shape.HeadDim; d++)
                    {
                        acc += left[(int)shape.Index(n, i * bs + r, h, d)] * right[(int)shape.Index(n, j * bs + c, h, d)];
                    }

                    weights[WeightIndex(plan, shape, n, h, b, r, c)] = acc;
                }
            }
        }

        return weights;
    }

    /// <summary><c>nn</c> (<paramref name="transposed"/> false) or <c>tn</c> (true) of weights and a dense tensor.</summary>
    public static double[] WeightValue(ReadOnlySpan<double> weights, ReadOnlySpan<double> dense, BlockSparsePlan plan, AttentionShape shape, bool transposed)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var bs = plan.BlockSize;
        var output = new double[shape.Elements];
        foreach (var (n, h, lh, b) in Blocks(plan, shape))
        {
            int i = plan.BlockRows[lh * plan.BlocksPerHead + b], j = plan.BlockColumns[lh * plan.BlocksPerHead + b];
            var (outBlock, inBlock) = transposed ? (j, i) : (i, j);
            for (var r = 0; r < bs; r++)
            {
                for (var c = 0; c < bs; c++)
                {
                    var w = transposed ? weights[(int)WeightIndex(plan, shape, n, h, b, c, r)] : weights[(int)WeightIndex(plan, shape, n, h, b, r, c)];
                    for (var d = 0; d < shape.HeadDim; d++)
                    {
                        output[shape.Index(n, outBlock * bs + r, h, d)] += w * dense[(int)shape.Index(n, inBlock * bs + c, h, d)];
                    }
                }
            }
        }

        return output;
    }

    /// <summary>Masked softmax of <c>scores * scale</c> per query row; excluded and empty-row entries are 0.</summary>
    public static double[] Softmax(ReadOnlySpan<double> scores, BlockSparsePlan plan, AttentionShape shape, double scale, bool useMask = true, int? autoregressAtKey = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var result = new double[scores.Length];
        var p = plan.KernelAutoregressAtKey(autoregressAtKey);
        foreach (var (n, h, lh, row, entries) in Rows(plan, shape))
        {
            var q = row;
            bool Allowed(int b, int c)
            {
                var key = plan.BlockColumns[lh * plan.BlocksPerHead + b] * plan.BlockSize + c;
                return (key < p || key <= q) && (!useMask || plan.IsElementAllowed(lh, b, q % plan.BlockSize, c));
            }

            var max = double.NegativeInfinity;
            foreach (var (b, c, index) in entries)
            {
                max = Allowed(b, c) ? Math.Max(max, scores[(int)index] * scale) : max;
            }

            double sum = 0;
            foreach (var (b, c, index) in entries)
            {
                sum += Allowed(b, c) ? Math.Exp(scores[(int)index] * scale - max) : 0;
            }

            foreach (var (b, c, index) in entries)
            {
                result[index] = Allowed(b, c) ? Math.Exp(scores[(int)index] * scale - max) / sum : 0;
            }
        }

        return result;
    }

    /// <summary><c>dx = (dy - rowsum(dy * y)) * y * scale</c>.</summary>
    public static double[] SoftmaxGrad(ReadOnlySpan<double> probabilities, ReadOnlySpan<double> outputGrad, BlockSparsePlan plan, AttentionShape shape, double scale)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var result = new double[probabilities.Length];
        foreach (var (_, _, _, _, entries) in Rows(plan, shape))
        {
            double dot = 0;
            foreach (var (_, _, index) in entries)
            {
                dot += outputGrad[(int)index] * probabilities[(int)index];
            }

            foreach (var (_, _, index) in entries)
            {
                result[index] = (outputGrad[(int)index] - dot) * probabilities[(int)index] * scale;
            }
        }

        return result;
    }

    /// <summary>Elements of a weight tensor for this plan and shape.</summary>
    public static long WeightCount(BlockSparsePlan plan, AttentionShape shape)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return (long)shape.Batch * plan.Heads * plan.BlocksPerHead * plan.BlockSize * plan.BlockSize;
    }

    private static long WeightIndex(BlockSparsePlan plan, AttentionShape shape, int n, int h, int b, int r, int c) =>
        ((((long)n * shape.Heads + h) * plan.BlocksPerHead + b) * plan.BlockSize + r) * plan.BlockSize + c;

    private static IEnumerable<(int N, int H, int LayoutHead, int Block)> Blocks(BlockSparsePlan plan, AttentionShape shape)
    {
        for (var n = 0; n < shape.Batch; n++)
        {
            for (var h = 0; h < shape.Heads; h++)
            {
                for (var b = 0; b < plan.BlocksPerHead; b++)
                {
                    yield return (n, h, plan.LayoutHeads == 1 ? 0 : h, b);
                }
            }
        }
    }

    private static IEnumerable<(int N, int H, int LayoutHead, int Query, List<(int Block, int Column, long Index)> Entries)> Rows(BlockSparsePlan plan, AttentionShape shape)
    {
        var bs = plan.BlockSize;
        for (var n = 0; n < shape.Batch; n++)
        {
            for (var h = 0; h < shape.Heads; h++)
            {
                var lh = plan.LayoutHeads == 1 ? 0 : h;
                for (var q = 0; q < plan.Ctx; q++)
                {
                    var entries = new List<(int, int, long)>();
                    var offset = lh * (plan.BlockCount + 1) + q / bs;
                    for (var e = plan.RowOffsets[offset]; e < plan.RowOffsets[offset + 1]; e++)
                    {
                        var b = plan.RowBlocks[e];
                        for (var c = 0; c < bs; c++)
                        {
                            entries.Add((b, c, WeightIndex(plan, shape, n, h, b, q % bs, c)));
                        }
                    }

                    yield return (n, h, lh, q, entries);
                }
            }
        }
    }
}
