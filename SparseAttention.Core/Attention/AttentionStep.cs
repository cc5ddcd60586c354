using SparseAttention.Ops;
using SparseAttention.Planning;
using SparseAttention.Tensors;

namespace SparseAttention.Attention;

/// <summary>
/// The unfused attention of one plan: probabilities by SDD + masked softmax, and the backward through all three ops.
/// Block-sparse intermediates are stored as <typeparamref name="TWeight"/>: the input type, or bf16 for fp32 inputs.
/// </summary>
internal sealed class AttentionStep<T, TWeight>(BlockSparsePlan plan, float scale, int? autoregressAtKey, int batch, bool allowTf32)
    where T : unmanaged
    where TWeight : unmanaged
{
    /// <summary><c>P = softmax(mask(q . k^T) * scale)</c> as block-sparse weights.</summary>
    public DeviceTensor<TWeight> Probabilities(DeviceTensor<T> q, DeviceTensor<T> k)
    {
        // The softmax overwrites the scores in place: each row's warp reads an element before writing it.
        var weights = BlockSparseOps.AllocateWeights<TWeight>(q.Device, plan, batch);
        BlockSparseOps.QueryKey(q, k, plan, weights, allowTf32);
        BlockSparseOps.Softmax(weights, plan, weights, scale, useMask: true, autoregressAtKey);
        return weights;
    }

    /// <summary>Gradients of q, k, v; recomputes P when <paramref name="saved"/> is null (the recompute scope).</summary>
    public DeviceTensor<T>[] Backward(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, DeviceTensor<TWeight>? saved, DeviceTensor<T> outputGrad)
    {
        var probabilities = saved ?? Probabilities(q, k);
        try
        {
            var dv = DeviceTensor<T>.Allocate(q.Device, [.. q.Shape]);
            BlockSparseOps.WeightValueTransposed(probabilities, outputGrad, plan, dv, allowTf32);

            // dP = dO . V^T on the enabled blocks; the softmax gradient then overwrites it in place with dS.
            using var scoresGrad = BlockSparseOps.AllocateWeights<TWeight>(q.Device, plan, batch);
            BlockSparseOps.QueryKey(outputGrad, v, plan, scoresGrad, allowTf32);
            BlockSparseOps.SoftmaxGrad(probabilities, scoresGrad, plan, scoresGrad, scale);

            var dq = DeviceTensor<T>.Allocate(q.Device, [.. q.Shape]);
            BlockSparseOps.WeightValue(scoresGrad, k, plan, dq, allowTf32);
            var dk = DeviceTensor<T>.Allocate(q.Device, [.. q.Shape]);
            BlockSparseOps.WeightValueTransposed(scoresGrad, q, plan, dk, allowTf32);
            return [dq, dk, dv];
        }
        finally
        {
            if (saved is null)
            {
                probabilities.Dispose();
            }
        }
    }
}
