using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>
/// The one place kernels are compiled, transformed and loaded, once per accelerator (compiling is far slower than
/// launching). On CUDA each kernel's PTX goes through the accelerator's <see cref="PtxStage"/>s before the driver sees it.
/// </summary>
internal static class KernelLoader
{
    private static readonly ConditionalWeakTable<Accelerator, Loaded> PerAccelerator = new();

    // ILGPU 1.5.3 has no public way to load PTX of one's own: the compiled kernel is rebuilt around the new text through
    // its internal constructor (context, entry point, kernel info, PTX). The tests fail loudly if that stops working.
    private static readonly ConstructorInfo RebuildPtx = typeof(PTXCompiledKernel).GetConstructor(
        BindingFlags.Instance | BindingFlags.NonPublic, [typeof(Context), typeof(EntryPoint), typeof(KernelInfo), typeof(string)])
        ?? throw new MissingMethodException("PTXCompiledKernel(Context, EntryPoint, KernelInfo, string) is gone: the PTX stage needs ILGPU 1.5.3");

    private static readonly PropertyInfo EntryPointOf = typeof(CompiledKernel).GetProperty("EntryPoint", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)
        ?? throw new MissingMemberException("CompiledKernel.EntryPoint is gone: the PTX stage needs ILGPU 1.5.3");

    // Launch bounds of kernels that have them (CUDA's __launch_bounds__): ILGPU writes them as .maxntid and .minnctapersm.
    private static readonly ConcurrentDictionary<MethodInfo, KernelSpecialization> Bounds = new();

    /// <summary>The stages every CUDA kernel goes through unless its accelerator was given others.</summary>
    public static IReadOnlyList<PtxStage> DefaultStages { get; } = [PtxStages.PromoteDepots, PtxStages.DropDeadCode];

    /// <summary>Sets the stages of <paramref name="accelerator"/>'s kernels; only before its first kernel is loaded.</summary>
    /// <exception cref="InvalidOperationException">A kernel was already loaded on the accelerator.</exception>
    public static void UseStages(Accelerator accelerator, IReadOnlyList<PtxStage> stages)
    {
        if (!PerAccelerator.TryAdd(accelerator, new Loaded(stages)))
        {
            throw new InvalidOperationException("the PTX stages of an accelerator are set before its first kernel is loaded");
        }
    }

    /// <summary>
    /// The launcher of <paramref name="kernel"/> on <paramref name="accelerator"/>, compiled on first use; its groups
    /// take up to <paramref name="dynamicSharedBytes"/> of dynamic shared memory (on CUDA more than 48 KB needs the
    /// driver's opt-in, given at load).
    /// </summary>
    public static Action<AcceleratorStream, KernelConfig, TParams> Get<TParams>(Accelerator accelerator, Action<TParams> kernel, int dynamicSharedBytes = 0)
        where TParams : struct
    {
        var loaded = PerAccelerator.GetValue(accelerator, _ => new Loaded(DefaultStages));
        return (Action<AcceleratorStream, KernelConfig, TParams>)loaded.Launchers.GetOrAdd(kernel.Method, method => Load<TParams>(accelerator, method, loaded.Stages, dynamicSharedBytes));
    }

    /// <summary>
    /// Compiles <paramref name="kernel"/> for groups of <paramref name="threads"/> threads, <paramref name="groups"/> of
    /// them resident per multiprocessor: ptxas caps its registers to fit them. A hint, not a requirement: where shared
    /// memory allows fewer groups, fewer run.
    /// </summary>
    public static void Bound(MethodInfo kernel, int threads, int groups) => Bounds[kernel] = new KernelSpecialization(threads, groups);

    /// <summary>The launch bounds <paramref name="kernel"/> is compiled with (empty: ptxas chooses).</summary>
    public static KernelSpecialization BoundsOf(MethodInfo kernel) => Bounds.GetValueOrDefault(kernel, KernelSpecialization.Empty);

    /// <summary>
    /// The PTX of an explicitly grouped kernel as the loader hands it to the driver: ILGPU's, then each stage, then
    /// <see cref="PtxStages.TargetHopper"/>, which is not a stage one may leave out: without it a module using
    /// <c>wgmma</c> does not load at all.
    /// </summary>
    public static string Transform(string ptx, IReadOnlyList<PtxStage> stages) => PtxStages.TargetHopper(stages.Aggregate(ptx, (text, stage) => stage(text)));

    private static Action<AcceleratorStream, KernelConfig, TParams> Load<TParams>(Accelerator accelerator, MethodInfo method, IReadOnlyList<PtxStage> stages, int dynamicSharedBytes)
        where TParams : struct
    {
        if (accelerator is not CudaAccelerator)
        {
            return accelerator.LoadKernel(method).CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, TParams>>();
        }

        var compiled = (PTXCompiledKernel)accelerator.CompileKernel(EntryPointDescription.FromExplicitlyGroupedKernel(method), BoundsOf(method));
        var ptx = Transform(compiled.PTXAssembly, stages);
        var loadable = ptx == compiled.PTXAssembly
            ? compiled
            : (CompiledKernel)RebuildPtx.Invoke([compiled.Context, EntryPointOf.GetValue(compiled), compiled.Info, ptx]);
        var kernel = accelerator.LoadKernel(loadable);
        SharedMemoryLimit.Allow((CudaKernel)kernel, dynamicSharedBytes);

        return kernel.CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, TParams>>();
    }

    private sealed class Loaded(IReadOnlyList<PtxStage> stages)
    {
        public IReadOnlyList<PtxStage> Stages { get; } = stages;

        public ConcurrentDictionary<MethodInfo, object> Launchers { get; } = new();
    }
}
