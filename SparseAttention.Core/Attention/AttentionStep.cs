using SparseAttention.Tensors;
using static SparseAttention.Ops.BlockSparseOps;

namespace SparseAttention.Attention;

/// <summary>
/// The unfused attention of one call: probabilities by SDD + masked softmax, and the backward through all three ops,
/// on the ops' unchecked cores (the call was validated at its entry). Block-sparse intermediates are stored as
/// <typeparamref name="TWeight"/>: the input type, or bf16 for fp32 inputs.
/// </summary>
internal sealed class AttentionStep<T, TWeight>(AttentionCall call)
    where T : unmanaged
    where TWeight : unmanaged
{
    /// <summary><c>P = softmax(mask(q . k^T) * scale)</c> as block-sparse weights.</summary>
    public DeviceTensor<TWeight> Probabilities(DeviceTensor<T> q, DeviceTensor<T> k)
    {
        // The softmax overwrites the scores in place: each row's warp reads an element before writing it.
        var weights = Weights(q);
        QueryKeyCore(q, k, call.Plan, weights, call.Dims, call.Path);
        SoftmaxCore(weights, call.Plan, weights, call.Dims, call.Scale, useMask: true, call.KernelAutoregressAtKey);
        return weights;
    }

    /// <summary>The output <c>P . v</c>.</summary>
    public DeviceTensor<T> Output(DeviceTensor<TWeight> probabilities, DeviceTensor<T> v)
    {
        var output = DeviceTensor<T>.Allocate(v.Device, [.. v.Shape]);
        DsdCore(probabilities, v, call.Plan, output, call.Dims, transposed: false, call.Path);
        return output;
    }

    /// <summary>Gradients of q, k, v; recomputes P when <paramref name="saved"/> is null (the recompute scope).</summary>
    public DeviceTensor<T>[] Backward(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, DeviceTensor<TWeight>? saved, DeviceTensor<T> outputGrad)
    {
        var probabilities = saved ?? Probabilities(q, k);
        try
        {
            var dv = DeviceTensor<T>.Allocate(q.Device, [.. q.Shape]);
            DsdCore(probabilities, outputGrad, call.Plan, dv, call.Dims, transposed: true, call.Path);

            // dP = dO . V^T on the enabled blocks; the softmax gradient then overwrites it in place with dS.
            using var scoresGrad = Weights(q);
            QueryKeyCore(outputGrad, v, call.Plan, scoresGrad, call.Dims, call.Path);
            SoftmaxGradCore(probabilities, scoresGrad, call.Plan, scoresGrad, call.Dims, call.Scale);

            var dq = DeviceTensor<T>.Allocate(q.Device, [.. q.Shape]);
            DsdCore(scoresGrad, k, call.Plan, dq, call.Dims, transposed: false, call.Path);
            var dk = DeviceTensor<T>.Allocate(q.Device, [.. q.Shape]);
            DsdCore(scoresGrad, q, call.Plan, dk, call.Dims, transposed: true, call.Path);
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

    private DeviceTensor<TWeight> Weights(DeviceTensor<T> like) => AllocateWeights<TWeight>(like.Device, call.Plan, call.Dims.Batch);
}
