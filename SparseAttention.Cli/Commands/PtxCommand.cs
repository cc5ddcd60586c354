using System.Reflection;
using SparseAttention.Kernels.BlockSparse;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Cli.Commands;

/// <summary>
/// Writes the PTX of every kernel as the CUDA accelerator loads it (sm_80 target, O2, then the loader's PTX stages), with
/// no GPU needed: check for <c>mma.sync</c> and local depots here, then <c>ptxas -v</c> for registers and stack frames.
/// </summary>
internal static class PtxCommand
{
    public static int Run(CommandLine line)
    {
        var folder = line.Text("out") ?? "ptx";
        Directory.CreateDirectory(folder);
        using var compiler = new OfflinePtxCompiler();
        (Type Family, string Method, Type[] Arguments)[] kernels =
        [
            (typeof(SddKernels), "Kernel", [typeof(float), typeof(Fp32), typeof(float), typeof(Fp32)]),
            (typeof(SddKernels), "Kernel", [typeof(float), typeof(Fp32), typeof(ushort), typeof(Bf16)]),
            (typeof(SddKernels), "TensorCoreKernel", [typeof(Fp16)]),
            (typeof(SddKernels), "TensorCoreKernel", [typeof(Bf16)]),
            (typeof(SddKernels), "Tf32Kernel", []),
            (typeof(DsdKernels), "Kernel", [typeof(float), typeof(Fp32), typeof(float), typeof(Fp32)]),
            (typeof(DsdKernels), "Kernel", [typeof(float), typeof(Fp32), typeof(ushort), typeof(Bf16)]),
            (typeof(DsdKernels), "TensorCoreKernel", [typeof(Fp16)]),
            (typeof(DsdKernels), "Tf32Kernel", []),
            (typeof(SoftmaxKernels), "Forward", [typeof(float), typeof(Fp32)]),
            (typeof(SoftmaxKernels), "Backward", [typeof(float), typeof(Fp32)]),
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

            var ilgpu = compiler.Compile(method);
            var loaded = KernelLoader.Transform(ilgpu, KernelLoader.DefaultStages);
            var file = Path.Combine(folder, $"{family.Name}.{name}{string.Concat(arguments.Select(a => "." + a.Name))}.ptx");
            File.WriteAllText(file, loaded);
            var mma = loaded.Split("mma.sync").Length - 1;
            int Depots(string ptx) => ptx.Split("__local_depot").Length - 1;
            Console.WriteLine($"{file}: {loaded.Length} characters, {mma} mma.sync, {Depots(ilgpu)} local depot references from ILGPU, {Depots(loaded)} after the PTX stages");
        }

        return 0;
    }

    // The fused kernels' register tiles are internal to the kernel assembly.
    private static Type KernelType(string name) =>
        typeof(FlashKernels).Assembly.GetType($"SparseAttention.Kernels.Fused.{name}", throwOnError: true)!;
}
