using SparseAttention.Kernels.Common;
using SparseAttention.Planning;
using SparseAttention.Selection;

namespace SparseAttention.Attention;

/// <summary>
/// One attention call after its entry validated it: what the forward and backward cores run, unchecked. Built once per
/// public call, so nothing below the entry checks q, k, v or the options again.
/// </summary>
/// <param name="Plan">The layout's plan.</param>
/// <param name="Dims">Batch, ctx, heads and head dim.</param>
/// <param name="Scale">Multiplies the scores.</param>
/// <param name="AutoregressAtKey">The decoding rule's key, in the token order the kernels see (null for none).</param>
/// <param name="Path">The kernels the selector chose.</param>
/// <param name="Recompute">Keep only the inputs in forward and recompute in backward.</param>
internal sealed record AttentionCall(BlockSparsePlan Plan, Dims Dims, float Scale, int? AutoregressAtKey, KernelPath Path, bool Recompute)
{
    /// <summary>The autoregressAtKey the kernels take: ctx when there is none (it then removes nothing).</summary>
    public int KernelAutoregressAtKey => AutoregressAtKey ?? Plan.Ctx;
}
