using ILGPU.Runtime;
using SparseAttention.Accelerators;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;
using SparseAttention.Kernels.Hopper;
using SparseAttention.Selection;
using SparseAttention.Ops;
using SparseAttention.Tensors;
using static SparseAttention.Ops.ElementDispatch;

namespace SparseAttention.Attention;

/// <summary>
/// Fused attention of one validated call (FlashAttention-2 style): the forward writes the output and each row's log-sum-exp, the
/// backward recomputes P tile by tile. Nothing of size <c>[blocks, block, block]</c> is ever allocated.
/// </summary>
internal sealed class FusedAttention<T>(AttentionCall call)
    where T : unmanaged
{
    /// <summary>The attention output and the log-sum-exp of each row, <c>[batch, heads, ctx]</c>.</summary>
    public (DeviceTensor<T> Output, DeviceTensor<float> LogSumExp) Forward(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v)
    {
        var device = q.Device;
        var output = DeviceTensor<T>.Allocate(device, [.. q.Shape]);
        var logSumExp = DeviceTensor<float>.Allocate(device, call.Dims.Batch, call.Dims.Heads, call.Dims.Ctx);
        using var pinned = device.Pin(call.Plan);
        Run(new ForwardAction(device, call.Path == KernelPath.FusedHopper, new FlashForwardParams
        {
            Problem = Problem(pinned), QueryQuads = As<T, Quad>(q), KeyQuads = As<T, Quad>(k), ValueQuads = As<T, Quad>(v),
            QueryAddress = Address(q), KeyAddress = Address(k), ValueAddress = Address(v), OutputPairs = As<T, uint>(output), LogSumExp = logSumExp.View,
        }));
        return (output, logSumExp);
    }

    /// <summary>Gradients of q, k, v from the forward's output and log-sum-exp.</summary>
    public DeviceTensor<T>[] Backward(DeviceTensor<T> q, DeviceTensor<T> k, DeviceTensor<T> v, DeviceTensor<T> output, DeviceTensor<float> logSumExp, DeviceTensor<T> outputGrad)
    {
        var device = q.Device;
        using var delta = DeviceTensor<float>.Allocate(device, call.Dims.Batch, call.Dims.Heads, call.Dims.Ctx);
        var dq = DeviceTensor<T>.Allocate(device, [.. q.Shape]);
        var dk = DeviceTensor<T>.Allocate(device, [.. q.Shape]);
        var dv = DeviceTensor<T>.Allocate(device, [.. q.Shape]);
        using var pinned = device.Pin(call.Plan);
        var problem = Problem(pinned);
        var inputs = new FlashBackwardInputs
        {
            QueryQuads = As<T, Quad>(q), KeyQuads = As<T, Quad>(k), ValueQuads = As<T, Quad>(v), OutputGradQuads = As<T, Quad>(outputGrad),
            QueryAddress = Address(q), KeyAddress = Address(k), ValueAddress = Address(v), OutputGradAddress = Address(outputGrad),
        };
        Run(new BackwardAction(
            device,
            call.Path == KernelPath.FusedHopper,
            new FlashDeltaParams { Dims = call.Dims, OutputQuads = As<T, Quad>(output), OutputGradQuads = As<T, Quad>(outputGrad), Delta = delta.View },
            new FlashQueryGradParams
            {
                Problem = problem, Inputs = inputs,
                LogSumExp = logSumExp.View, Delta = delta.View, QueryGradPairs = As<T, uint>(dq),
            },
            new FlashKeyValueGradParams
            {
                Problem = problem, Inputs = inputs,
                LogSumExp = logSumExp.View, LogSumExpAddress = Address(logSumExp), Delta = delta.View, DeltaAddress = Address(delta),
                KeyGradPairs = As<T, uint>(dk), ValueGradPairs = As<T, uint>(dv),
            }));
        return [dq, dk, dv];
    }

    private static void Run<TAction>(TAction action)
        where TAction : IElementAction => ElementDispatch.Run<T, TAction>(action);

    private static long Address<TTensor>(DeviceTensor<TTensor> tensor)
        where TTensor : unmanaged => tensor.View.AsContiguous().LoadEffectiveAddressAsPtr().ToInt64();

    private FlashProblem Problem(PinnedPlan pinned) => new() { Dims = call.Dims, Plan = pinned.Tables, Scale = call.Scale, AutoregressAtKey = call.KernelAutoregressAtKey };

    private readonly record struct ForwardAction(ComputeDevice Device, bool Hopper, FlashForwardParams Params) : IElementAction
    {
        public void Run<TS, TE>()
            where TS : unmanaged
            where TE : struct, IElement<TS> => throw new NotSupportedException("the fused kernels take fp16 and bf16");

        public void RunTensorCore<TE>()
            where TE : struct, IElement<ushort>, IMmaElement
        {
            if (Hopper)
            {
                HopperKernels.LaunchForward<TE>(Device.Accelerator, Params);
            }
            else
            {
                FlashKernels.LaunchForward<TE>(Device.Accelerator, Params);
            }
        }
    }

    private readonly record struct BackwardAction(ComputeDevice Device, bool Hopper, FlashDeltaParams Delta, FlashQueryGradParams QueryGrad, FlashKeyValueGradParams KeyValueGrad) : IElementAction
    {
        public void Run<TS, TE>()
            where TS : unmanaged
            where TE : struct, IElement<TS> => throw new NotSupportedException("the fused kernels take fp16 and bf16");

        public void RunTensorCore<TE>()
            where TE : struct, IElement<ushort>, IMmaElement
        {
            if (Hopper)
            {
                HopperKernels.LaunchBackward<TE>(Device.Accelerator, Delta, QueryGrad, KeyValueGrad);
            }
            else
            {
                FlashKernels.LaunchBackward<TE>(Device.Accelerator, Delta, QueryGrad, KeyValueGrad);
            }
        }
    }
}
