using SparseAttention.Kernels.BlockSparse;
using SparseAttention.Kernels.Common;
using SparseAttention.Tensors;
using static SparseAttention.Ops.ElementDispatch;

namespace SparseAttention.Ops;

/// <summary>SDD launch, specialised per element type; <paramref name="OutputBf16"/> replaces <paramref name="Output"/> for bf16 weights.</summary>
internal readonly record struct SddAction<T>(DeviceTensor<T> Left, DeviceTensor<T> Right, DeviceTensor<T>? Output, DeviceTensor<BFloat16>? OutputBf16, Dims Dims, PlanTables Tables, bool AllowTf32) : IElementAction
    where T : unmanaged
{
    public void Run<TS, TE>()
        where TS : unmanaged
        where TE : struct, IElement<TS>
    {
        if (AllowTf32 && typeof(TS) == typeof(float))
        {
            SddKernels.LaunchTf32(Left.Device.Accelerator, new SddParams<float> { Left = As<T, float>(Left), Right = As<T, float>(Right), Output = As<T, float>(Output!), Dims = Dims, Plan = Tables });
            return;
        }

        SddKernels.Launch<TS, TE>(Left.Device.Accelerator, new SddParams<TS>
        {
            Left = As<T, TS>(Left), Right = As<T, TS>(Right), Output = Output is null ? default : As<T, TS>(Output),
            OutputBf16 = OutputBf16 is null ? default : As<BFloat16, ushort>(OutputBf16), WeightsAreBf16 = OutputBf16 is null ? 0 : 1, Dims = Dims, Plan = Tables,
        });
    }

    public void RunTensorCore<TE>()
        where TE : struct, IElement<ushort>, IMmaElement =>
        SddKernels.LaunchTensorCore<TE>(Left.Device.Accelerator, new SddParams<ushort>
        {
            Left = As<T, ushort>(Left), Right = As<T, ushort>(Right), Output = As<T, ushort>(Output!),
            LeftQuads = As<T, Quad>(Left), RightQuads = As<T, Quad>(Right), OutputQuads = As<T, Quad>(Output!), Dims = Dims, Plan = Tables,
        });
}

/// <summary>DSD launch (plain or transposed), specialised per element type; <paramref name="WeightsBf16"/> replaces <paramref name="Weights"/> for bf16 weights.</summary>
internal readonly record struct DsdAction<T>(DeviceTensor<T>? Weights, DeviceTensor<BFloat16>? WeightsBf16, DeviceTensor<T> Dense, DeviceTensor<T> Output, Dims Dims, PlanTables Tables, int Transposed, bool AllowTf32) : IElementAction
    where T : unmanaged
{
    public void Run<TS, TE>()
        where TS : unmanaged
        where TE : struct, IElement<TS>
    {
        if (AllowTf32 && typeof(TS) == typeof(float))
        {
            DsdKernels.LaunchTf32(Dense.Device.Accelerator, new DsdParams<float> { Weights = As<T, float>(Weights!), Dense = As<T, float>(Dense), Output = As<T, float>(Output), Dims = Dims, Plan = Tables, Transposed = Transposed });
            return;
        }

        DsdKernels.Launch<TS, TE>(Dense.Device.Accelerator, new DsdParams<TS>
        {
            Weights = Weights is null ? default : As<T, TS>(Weights), Dense = As<T, TS>(Dense), Output = As<T, TS>(Output),
            WeightsBf16 = WeightsBf16 is null ? default : As<BFloat16, ushort>(WeightsBf16), WeightsAreBf16 = WeightsBf16 is null ? 0 : 1, Dims = Dims, Plan = Tables, Transposed = Transposed,
        });
    }

    public void RunTensorCore<TE>()
        where TE : struct, IElement<ushort>, IMmaElement =>
        DsdKernels.LaunchTensorCore<TE>(Dense.Device.Accelerator, new DsdParams<ushort>
        {
            Weights = As<T, ushort>(Weights!), Dense = As<T, ushort>(Dense), Output = As<T, ushort>(Output),
            WeightQuads = As<T, Quad>(Weights!), DenseQuads = As<T, Quad>(Dense), OutputPairs = As<T, uint>(Output), Dims = Dims, Plan = Tables, Transposed = Transposed,
        });
}

/// <summary>Masked softmax launch, specialised per element type.</summary>
internal readonly record struct SoftmaxAction<T>(DeviceTensor<T> Input, DeviceTensor<T> Output, Dims Dims, PlanTables Tables, float Scale, int UseMask, int AutoregressAtKey) : IElementAction
    where T : unmanaged
{
    public void Run<TS, TE>()
        where TS : unmanaged
        where TE : struct, IElement<TS> =>
        SoftmaxKernels.Launch<TS, TE>(Input.Device.Accelerator, new SoftmaxParams<TS> { Input = As<T, TS>(Input), Output = As<T, TS>(Output), Dims = Dims, Plan = Tables, Scale = Scale, UseMask = UseMask, AutoregressAtKey = AutoregressAtKey });

    public void RunTensorCore<TE>()
        where TE : struct, IElement<ushort>, IMmaElement =>
        SoftmaxKernels.LaunchPacked<TE>(Input.Device.Accelerator, new SoftmaxParams<ushort>
        {
            InputQuads = As<T, Quad>(Input), OutputQuads = As<T, Quad>(Output), Dims = Dims, Plan = Tables, Scale = Scale, UseMask = UseMask, AutoregressAtKey = AutoregressAtKey,
        });
}

/// <summary>Softmax gradient launch, specialised per element type.</summary>
internal readonly record struct SoftmaxGradAction<T>(DeviceTensor<T> Probabilities, DeviceTensor<T> OutputGrad, DeviceTensor<T> InputGrad, Dims Dims, PlanTables Tables, float Scale) : IElementAction
    where T : unmanaged
{
    public void Run<TS, TE>()
        where TS : unmanaged
        where TE : struct, IElement<TS> =>
        SoftmaxKernels.LaunchGrad<TS, TE>(Probabilities.Device.Accelerator, new SoftmaxGradParams<TS> { Probabilities = As<T, TS>(Probabilities), OutputGrad = As<T, TS>(OutputGrad), InputGrad = As<T, TS>(InputGrad), Dims = Dims, Plan = Tables, Scale = Scale });

    public void RunTensorCore<TE>()
        where TE : struct, IElement<ushort>, IMmaElement =>
        SoftmaxKernels.LaunchGradPacked<TE>(Probabilities.Device.Accelerator, new SoftmaxGradParams<ushort>
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
