using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;

namespace SparseAttention.Kernels.Fused;

/// <summary>The fused backward: delta = rowsum(O * dO), then dQ by the row LUT and dK, dV by the column LUT.</summary>
public static partial class FlashKernels
{
    /// <summary>Writes dQ, dK and dV from q, k, v, the forward output and log-sum-exp and the output gradient.</summary>
    /// <remarks>Deterministic: every gradient element is summed by one lane in LUT order, no atomics.</remarks>
    public static void LaunchBackward<TElement>(Accelerator accelerator, in FlashDeltaParams delta, in FlashQueryGradParams queryGrad, in FlashKeyValueGradParams keyValueGrad)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        var rows = delta.Dims.Batch * delta.Dims.Ctx * delta.Dims.Heads;
        KernelLoader.Get<FlashDeltaParams>(accelerator, DeltaKernel<TElement>)(accelerator.DefaultStream, new KernelConfig((rows + 127) / 128, 128), delta);
        var (_, dq, dkdv) = KernelsFor<TElement>(queryGrad.Problem.Dims.HeadDim);
        KernelLoader.Get(accelerator, dq)(accelerator.DefaultStream, Config(accelerator, queryGrad.Problem), queryGrad);
        KernelLoader.Get(accelerator, dkdv)(accelerator.DefaultStream, Config(accelerator, keyValueGrad.Problem), keyValueGrad);
    }

    // One thread per (sequence, token, head): delta is the dot product of the output row and its gradient.
    internal static void DeltaKernel<TElement>(FlashDeltaParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
    {
        var element = default(TElement);
        var dims = p.Dims;
        var row = Grid.GlobalIndex.X;
        if (row >= dims.Batch * dims.Ctx * dims.Heads)
        {
            return;
        }

        var h = row % dims.Heads;
        var token = row / dims.Heads % dims.Ctx;
        var n = row / dims.Heads / dims.Ctx;
        var first = (long)row * dims.HeadDim;
        var sum = 0f;
        for (var d = 0; d < dims.HeadDim; d++)
        {
            sum += element.ToFloat(p.Output[first + d]) * element.ToFloat(p.OutputGrad[first + d]);
        }

        p.Delta[((long)n * dims.Heads + h) * dims.Ctx + token] = sum;
    }

    // dQ = scale * sum over keys of P * (dP - delta) . K, P recomputed from the log-sum-exp, dP = dO . V^T.
    internal static void QueryGradKernel<TElement, TTiles>(FlashQueryGradParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TTiles : struct, IFeatureTiles
    {
        var problem = p.Problem;
        var warp = new FlashWarp(problem, transposed: false);
        int g = warp.G, t = warp.T;
        var dims = problem.Dims;
        var scaleLog2 = problem.Scale * Base2.Log2E;
        var queryGrad = default(TTiles);
        var scores = default(ScoreTile);
        var scoresGrad = default(ScoreTile);
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u;
        var rowLow = problem.RowIndex(Grid.IdxY, warp.First + g);
        float lseLow = p.LogSumExp[rowLow], lseHigh = p.LogSumExp[rowLow + 8], deltaLow = p.Delta[rowLow], deltaHigh = p.Delta[rowLow + 8];
        var rowPair = dims.Index(warp.N, warp.First + g, warp.H, 2 * t) >> 1;
        for (var entry = warp.Start; entry < warp.End; entry++)
        {
            var block = warp.Block(entry);
            for (var chunk = 0; chunk < problem.Plan.BlockSize; chunk += 16)
            {
                var key = block.Other + chunk;
                if (!warp.Keeps(problem, block, chunk, out var allowed))
                {
                    continue;
                }

                var keyPair = dims.Index(warp.N, key + g, warp.H, 2 * t) >> 1;
                scores.Compute<TElement>(p.QueryPairs, rowPair, p.KeyPairs, keyPair, warp.EightRowPairs, dims.HeadDim);
                scores.ScaleAndMask(scaleLog2, allowed);
                scores.Exp2Minus(lseLow, lseHigh, 0f, 0f, 0f, 0f);
                scoresGrad.Compute<TElement>(p.OutputGradPairs, rowPair, p.ValuePairs, keyPair, warp.EightRowPairs, dims.HeadDim);
                scores.SoftmaxGrad(scoresGrad, deltaLow, deltaHigh, 0f, 0f, 0f, 0f);
                scores.ToOperand<TElement>(ref a0, ref a1, ref a2, ref a3);
                queryGrad.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, p.Key, p.KeyPairs, dims.Index(warp.N, key, warp.H, 0), warp.TokenStep, 0);
            }
        }

        queryGrad.Store<TElement>(p.QueryGradPairs, dims.Index(warp.N, warp.First + g, warp.H, 2 * t), 8 * warp.TokenStep, problem.Scale, problem.Scale, 0);
    }

    // Per key tile, transposed: P^T = exp2(K . Q^T * scale - lse), dV = sum P^T . dO, dS^T = P^T * (V . dO^T - delta),
    // dK = scale * sum dS^T . Q.
    internal static void KeyValueGradKernel<TElement, TTiles>(FlashKeyValueGradParams p)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TTiles : struct, IFeatureTiles
    {
        var problem = p.Problem;
        var warp = new FlashWarp(problem, transposed: true);
        int g = warp.G, t = warp.T;
        var dims = problem.Dims;
        var scaleLog2 = problem.Scale * Base2.Log2E;
        var keyGrad = default(TTiles);
        var valueGrad = default(TTiles);
        var scores = default(ScoreTile);
        var scoresGrad = default(ScoreTile);
        Input<uint> a0 = 0u, a1 = 0u, a2 = 0u, a3 = 0u;
        var keyPair = dims.Index(warp.N, warp.First + g, warp.H, 2 * t) >> 1;
        for (var entry = warp.Start; entry < warp.End; entry++)
        {
            var block = warp.Block(entry);
            for (var chunk = 0; chunk < problem.Plan.BlockSize; chunk += 16)
            {
                var query = block.Other + chunk;
                if (!warp.Keeps(problem, block, chunk, out var allowed))
                {
                    continue;
                }

                // Each lane's four columns are queries 2t, 2t+1, 8+2t, 9+2t of the tile.
                var column = problem.RowIndex(Grid.IdxY, query + 2 * t);
                var queryPair = dims.Index(warp.N, query + g, warp.H, 2 * t) >> 1;
                var queryZero = dims.Index(warp.N, query, warp.H, 0);
                scores.Compute<TElement>(p.KeyPairs, keyPair, p.QueryPairs, queryPair, warp.EightRowPairs, dims.HeadDim);
                scores.ScaleAndMask(scaleLog2, allowed);
                scores.Exp2Minus(0f, 0f, p.LogSumExp[column], p.LogSumExp[column + 1], p.LogSumExp[column + 8], p.LogSumExp[column + 9]);
                scores.ToOperand<TElement>(ref a0, ref a1, ref a2, ref a3);
                valueGrad.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, p.OutputGrad, p.OutputGradPairs, queryZero, warp.TokenStep, 0);
                scoresGrad.Compute<TElement>(p.ValuePairs, keyPair, p.OutputGradPairs, queryPair, warp.EightRowPairs, dims.HeadDim);
                scores.SoftmaxGrad(scoresGrad, 0f, 0f, p.Delta[column], p.Delta[column + 1], p.Delta[column + 8], p.Delta[column + 9]);
                scores.ToOperand<TElement>(ref a0, ref a1, ref a2, ref a3);
                keyGrad.Accumulate<TElement>(ref a0, ref a1, ref a2, ref a3, p.Query, p.QueryPairs, queryZero, warp.TokenStep, 0);
            }
        }

        var output = dims.Index(warp.N, warp.First + g, warp.H, 2 * t);
        keyGrad.Store<TElement>(p.KeyGradPairs, output, 8 * warp.TokenStep, problem.Scale, problem.Scale, 0);
        valueGrad.Store<TElement>(p.ValueGradPairs, output, 8 * warp.TokenStep, 1f, 1f, 0);
    }
}
