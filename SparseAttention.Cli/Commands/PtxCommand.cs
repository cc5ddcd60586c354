using System.Reflection;
using SparseAttention.Kernels.BlockSparse;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;
using SparseAttention.Kernels.Hopper;

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
        ];
        var methods = kernels.Select(k => (Method: Find(k.Family, k.Method, k.Arguments), Name: $"{k.Family.Name}.{k.Method}{string.Concat(k.Arguments.Select(a => "." + a.Name))}"))
            .Concat(new[] { (64, 64), (128, 64), (64, 32), (128, 32) }.SelectMany(c => new[]
            {
                (FlashKernels.ForwardKernelFor<Fp16>(c.Item1, c.Item2).Method, $"FlashKernels.ForwardKernel.Fp16.D{c.Item1}.B{c.Item2}"),
                (FlashKernels.QueryGradKernelFor<Fp16>(c.Item1, c.Item2).Method, $"FlashKernels.QueryGradKernel.Fp16.D{c.Item1}.B{c.Item2}"),
                (FlashKernels.KeyValueGradKernelFor<Fp16>(c.Item1, c.Item2).Method, $"FlashKernels.KeyValueGradKernel.Fp16.D{c.Item1}.B{c.Item2}"),
            }))
            .Concat(HopperKernels.HeadDims.SelectMany(d => new[]
            {
                (HopperKernels.ForwardKernelFor<Fp16>(d).Method, $"HopperKernels.ForwardKernel.Fp16.D{d}"),
                (HopperKernels.ForwardKernelFor<Bf16>(d).Method, $"HopperKernels.ForwardKernel.Bf16.D{d}"),
                (HopperKernels.QueryGradKernelFor<Fp16>(d).Method, $"HopperKernels.QueryGradKernel.Fp16.D{d}"),
                (HopperKernels.KeyValueGradKernelFor<Fp16>(d).Method, $"HopperKernels.KeyValueGradKernel.Fp16.D{d}"),
                (HopperKernels.QueryGradKernelFor<Bf16>(d).Method, $"HopperKernels.QueryGradKernel.Bf16.D{d}"),
                (HopperKernels.KeyValueGradKernelFor<Bf16>(d).Method, $"HopperKernels.KeyValueGradKernel.Bf16.D{d}"),
            }));
        foreach (var (method, name) in methods)
        {
            var ilgpu = compiler.Compile(method);
            var loaded = KernelLoader.Transform(ilgpu, KernelLoader.DefaultStages);
            var file = Path.Combine(folder, $"{name}.ptx");
            File.WriteAllText(file, loaded);
            var mma = loaded.Split("mma.sync").Length - 1;
            int Depots(string ptx) => ptx.Split("__local_depot").Length - 1;
            Console.WriteLine($"{file}: {loaded.Length} characters, {mma} mma.sync, {Depots(ilgpu)} local depot references from ILGPU, {Depots(loaded)} after the PTX stages");
        }

        return 0;
    }

    private static MethodInfo Find(Type family, string name, Type[] arguments)
    {
        var method = family.GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)
            ?? throw new InvalidOperationException($"{family.Name}.{name} not found");
        return arguments.Length > 0 ? method.MakeGenericMethod(arguments) : method;
    }
}
