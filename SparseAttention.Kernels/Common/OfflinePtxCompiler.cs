using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>
/// ILGPU's PTX for a kernel as the CUDA accelerator would compile it (sm_80 target, O2), with no GPU: for the ptx
/// command and for tests of the PTX stages on machines without CUDA.
/// </summary>
internal sealed class OfflinePtxCompiler : IDisposable
{
    private readonly Context context = Context.Create(builder => builder.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2));
    private readonly PTXBackend backend;

    public OfflinePtxCompiler() =>
        backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_80), CudaArchitecture.SM_80, CudaInstructionSet.ISA_80, null);

    /// <summary>The PTX of the explicitly grouped kernel <paramref name="method"/> with its launch bounds, before any stage.</summary>
    public string Compile(MethodInfo method) =>
        ((PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), KernelLoader.BoundsOf(method))).PTXAssembly;

    /// <inheritdoc/>
    public void Dispose()
    {
        backend.Dispose();
        context.Dispose();
    }
}
