using SparseAttention.Kernels.BlockSparse;
using SparseAttention.Kernels.Common;
using SparseAttention.Selection;
using SparseAttention.Tensors;
using static SparseAttention.Ops.ElementDispatch;

namespace SparseAttention.Ops;

/// <summary>SDD launch on the kernel of <paramref name="Path"/>, specialised per element type of the inputs.</summary>
internal readonly record struct SddAction<T, TWeight>(DeviceTensor<T> Left, DeviceTensor<T> Right, DeviceTensor<TWeight> Output, Dims Dims, PlanTables Tables, KernelPath Path) : IElementAction
    where T : unmanaged
    where TWeight : unmanaged
{
    public void Run<TS, TE>()
        where TS : unmanaged
        where TE : struct, IElement<TS>
    {
        var accelerator = Left.Device.Accelerator;
        switch (Path)
        {
            case KernelPath.Tf32:
                SddKernels.LaunchTf32(accelerator, new SddTf32Params { Left = As<T, float>(Left), Right = As<T, float>(Right), Output = As<TWeight, float>(Output), Dims = Dims, Plan = Tables });
                break;
            case KernelPath.Fma:
                SddKernels.Launch<TS, TE, TS, TE>(accelerator, new SddFmaParams<TS, TS> { Left = As<T, TS>(Left), Right = As<T, TS>(Right), Output = As<TWeight, TS>(Output), Dims = Dims, Plan = Tables });
                break;
            case KernelPath.FmaBf16Scores:
                SddKernels.Launch<TS, TE, ushort, Bf16>(accelerator, new SddFmaParams<TS, ushort> { Left = As<T, TS>(Left), Right = As<T, TS>(Right), Output = As<TWeight, ushort>(Output), Dims = Dims, Plan = Tables });
                break;
            default:
                throw KernelPaths.NotFor(Path, typeof(T));
        }
    }

    public void RunTensorCore<TE>()
        where TE : struct, IElement<ushort>, IMmaElement
    {
        if (Path != KernelPath.TensorCores)
        {
            throw KernelPaths.NotFor(Path, typeof(T));
        }

        SddKernels.LaunchTensorCore<TE>(Left.Device.Accelerator, new SddTensorCoreParams
        {
            LeftQuads = As<T, Quad>(Left), RightQuads = As<T, Quad>(Right), OutputQuads = As<TWeight, Quad>(Output), Dims = Dims, Plan = Tables,
        });
    }
}

/// <summary>DSD launch (plain or transposed) on the kernel of <paramref name="Path"/>, specialised per element type of the dense operand.</summary>
internal readonly record struct DsdAction<T, TWeight>(DeviceTensor<TWeight> Weights, DeviceTensor<T> Dense, DeviceTensor<T> Output, Dims Dims, PlanTables Tables, int Transposed, KernelPath Path) : IElementAction
    where T : unmanaged
    where TWeight : unmanaged
{
    public void Run<TS, TE>()
        where TS : unmanaged
        where TE : struct, IElement<TS>
    {
        var accelerator = Dense.Device.Accelerator;
        switch (Path)
        {
            case KernelPath.Tf32:
                DsdKernels.LaunchTf32(accelerator, new DsdTf32Params { Weights = As<TWeight, float>(Weights), Dense = As<T, float>(Dense), Output = As<T, float>(Output), Dims = Dims, Plan = Tables, Transposed = Transposed });
                break;
            case KernelPath.Fma:
                DsdKernels.Launch<TS, TE, TS, TE>(accelerator, new DsdFmaParams<TS, TS> { Weights = As<TWeight, TS>(Weights), Dense = As<T, TS>(Dense), Output = As<T, TS>(Output), Dims = Dims, Plan = Tables, Transposed = Transposed });
                break;
            case KernelPath.FmaBf16Scores:
                DsdKernels.Launch<TS, TE, ushort, Bf16>(accelerator, new DsdFmaParams<TS, ushort> { Weights = As<TWeight, ushort>(Weights), Dense = As<T, TS>(Dense), Output = As<T, TS>(Output), Dims = Dims, Plan = Tables, Transposed = Transposed });
                break;
            default:
                throw KernelPaths.NotFor(Path, typeof(T));
        }
    }

    public void RunTensorCore<TE>()
        where TE : struct, IElement<ushort>, IMmaElement
    {
        if (Path != KernelPath.TensorCores)
        {
            throw KernelPaths.NotFor(Path, typeof(T));
        }

        DsdKernels.LaunchTensorCore<TE>(Dense.Device.Accelerator, new DsdTensorCoreParams
        {
            WeightQuads = As<TWeight, Quad>(Weights), DenseQuads = As<T, Quad>(Dense), OutputPairs = As<T, uint>(Output), Dims = Dims, Plan = Tables, Transposed = Transposed,
        });
    }
}

/// <summary>Masked softmax launch, specialised per element type: the packed kernel for 16-bit storage, the plain one otherwise.</summary>
internal readonly record struct SoftmaxAction<T>(DeviceTensor<T> Input, DeviceTensor<T> Output, Dims Dims, PlanTables Tables, float Scale, int UseMask, int AutoregressAtKey) : IElementAction
    where T : unmanaged
{
    public void Run<TS, TE>()
        where TS : unmanaged
        where TE : struct, IElement<TS> =>
        SoftmaxKernels.Launch<TS, TE>(Input.Device.Accelerator, new SoftmaxParams<TS> { Input = As<T, TS>(Input), Output = As<T, TS>(Output), Dims = Dims, Plan = Tables, Scale = Scale, UseMask = UseMask, AutoregressAtKey = AutoregressAtKey });

    public void RunTensorCore<TE>()
        where TE : struct, IElement<ushort>, IMmaElement =>
        SoftmaxKernels.LaunchPacked<TE>(Input.Device.Accelerator, new SoftmaxPackedParams
        {
            InputQuads = As<T, Quad>(Input), OutputQuads = As<T, Quad>(Output), Dims = Dims, Plan = Tables, Scale = Scale, UseMask = UseMask, AutoregressAtKey = AutoregressAtKey,
        });
}

/// <summary>Softmax gradient launch, specialised per element type: the packed kernel for 16-bit storage, the plain one otherwise.</summary>
internal readonly record struct SoftmaxGradAction<T>(DeviceTensor<T> Probabilities, DeviceTensor<T> OutputGrad, DeviceTensor<T> InputGrad, Dims Dims, PlanTables Tables, float Scale) : IElementAction
    where T : unmanaged
{
    public void Run<TS, TE>()
        where TS : unmanaged
        where TE : struct, IElement<TS> =>
        SoftmaxKernels.LaunchGrad<TS, TE>(Probabilities.Device.Accelerator, new SoftmaxGradParams<TS> { Probabilities = As<T, TS>(Probabilities), OutputGrad = As<T, TS>(OutputGrad), InputGrad = As<T, TS>(InputGrad), Dims = Dims, Plan = Tables, Scale = Scale });

    public void RunTensorCore<TE>()
        where TE : struct, IElement<ushort>, IMmaElement =>
        SoftmaxKernels.LaunchGradPacked<TE>(Probabilities.Device.Accelerator, new SoftmaxGradPackedParams
        {
            ProbabilityQuads = As<T, Quad>(Probabilities), OutputGradQuads = As<T, Quad>(OutputGrad), InputGradQuads = As<T, Quad>(InputGrad), Dims = Dims, Plan = Tables, Scale = Scale,
        });
}

/// <summary>Element-wise add launch, specialised per element type.</summary>
internal readonly record struct AddAction<T>(DeviceTensor<T> Left, DeviceTensor<T> Right, DeviceTensor<T> Output) : IElementAction
    where T : unmanaged
{
    public void Run<TS, TE>()
        where TS : unmanaged
        where TE : struct, IElement<TS> =>
        ElementwiseKernels.Add<TS, TE>(Left.Device.Accelerator, new AddParams<TS> { Left = As<T, TS>(Left), Right = As<T, TS>(Right), Output = As<T, TS>(Output) });
}

/// <summary>What the matrix-product actions throw for a path with no kernel for their element type (the selector never picks one).</summary>
file static class KernelPaths
{
    public static InvalidOperationException NotFor(KernelPath path, Type element) => new($"the {path} path has no matrix-product kernel for {element.Name} inputs");
}
