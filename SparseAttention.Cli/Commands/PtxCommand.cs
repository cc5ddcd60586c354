using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.BlockSparse;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Cli.Commands;

/// <summary>
/// Writes the PTX of every kernel, as the CUDA accelerator compiles it (sm_80 target, O2), with no GPU needed: check
/// for <c>mma.sync</c> and local depots here, then run <c>ptxas -v</c> on the GPU machine for registers and stack frames.
/// </summary>
internal static class PtxCommand
{
    public static int Run(CommandLine line)
    {
        var folder = line.Text("out") ?? "ptx";
        Directory.CreateDirectory(folder);
        using var context = Context.Create(builder => builder.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2));
        using var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_80), CudaArchitecture.SM_80, CudaInstructionSet.ISA_80, null);
        (Type Family, string Method, Type[] Arguments)[] kernels =
        [
            (typeof(SddKernels), "Kernel", [typeof(ushort), typeof(Fp16)]),
            (typeof(SddKernels), "TensorCoreKernel", [typeof(Fp16)]),
            (typeof(SddKernels), "TensorCoreKernel", [typeof(Bf16)]),
            (typeof(SddKernels), "Tf32Kernel", []),
            (typeof(DsdKernels), "Kernel", [typeof(float), typeof(Fp32)]),
            (typeof(DsdKernels), "TensorCoreKernel", [typeof(Fp16)]),
            (typeof(DsdKernels), "Tf32Kernel", []),
            (typeof(SoftmaxKernels), "Forward", [typeof(ushort), typeof(Fp16)]),
            (typeof(SoftmaxKernels), "Backward", [typeof(ushort), typeof(Fp16)]),
            (typeof(SoftmaxKernels), "ForwardPacked", [typeof(Fp16)]),
            (typeof(SoftmaxKernels), "BackwardPacked", [typeof(Fp16)]),
            (typeof(FlashKernels), "ForwardKernel", [typeof(Fp16), KernelType("Features64")]),
            (typeof(FlashKernels), "QueryGradKernel", [typeof(Fp16), KernelType("Features64")]),
            (typeof(FlashKernels), "KeyValueGradKernel", [typeof(Fp16), KernelType("Features64")]),
        ];
        foreach (var (family, name, arguments) in kernels)
        {
            var method = family.GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)
                ?? throw new InvalidOperationException($"{family.Name}.{name} not found");
            if (arguments.Length > 0)
            {
                method = method.MakeGenericMethod(arguments);
            }

            var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), KernelSpecialization.Empty);
            var file = Path.Combine(folder, $"{family.Name}.{name}{string.Concat(arguments.Select(a => "." + a.Name))}.ptx");
            File.WriteAllText(file, compiled.PTXAssembly);
            var mma = compiled.PTXAssembly.Split("mma.sync").Length - 1;
            var depots = compiled.PTXAssembly.Split("__local_depot").Length - 1;
            Console.WriteLine($"{file}: {compiled.PTXAssembly.Length} characters, {mma} mma.sync, {depots} local depot references (ptxas -v tells whether any survive)");
        }

        return 0;
    }

    // The fused kernels' register tiles are internal to the kernel assembly.
    private static Type KernelType(string name) =>
        typeof(FlashKernels).Assembly.GetType($"SparseAttention.Kernels.Fused.{name}", throwOnError: true)!;
}
