using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Tests;

/// <summary>The launch-bounds stage: where it writes the directives, what it leaves alone, and which fused kernels carry them as loaded.</summary>
[TestClass]
public sealed class LaunchBoundsTests
{
    private const string Kernel = ".version 8.0\n.target sm_80\n.visible .entry Kernel_K(\n\t.param .align 8 .b8 _p_1[16]\n)\n{\n\tret;\n}\n";

    [TestMethod]
    public void BoundsGoBetweenTheParametersAndTheBody()
    {
        var bounded = PtxStages.LaunchBounds(128, 3)(Kernel);
        Assert.AreEqual(Kernel.Replace(")\n{", ")\n.maxntid 128, 1, 1\n.minnctapersm 3\n{", StringComparison.Ordinal), bounded);
        Assert.AreEqual(bounded, PtxStages.LaunchBounds(128, 2)(bounded), "bounds already there are kept");
    }

    [TestMethod]
    public void ModulesWithoutExactlyOneKernelAreLeftAlone()
    {
        const string noKernel = ".version 8.0\n.target sm_80\n";
        Assert.AreEqual(noKernel, PtxStages.LaunchBounds(128, 3)(noKernel));
        var twoKernels = Kernel + Kernel.Replace("Kernel_K", "Kernel_L", StringComparison.Ordinal);
        Assert.AreEqual(twoKernels, PtxStages.LaunchBounds(128, 3)(twoKernels));
    }

    [TestMethod]
    [DataRow("forward", 128, 64, 3)]
    [DataRow("forward", 128, 32, 3)]
    [DataRow("forward", 64, 64, 0)]
    [DataRow("forward", 64, 32, 0)]
    [DataRow("dQ", 64, 64, 0)]
    [DataRow("dK/dV", 64, 64, 3)]
    [DataRow("dK/dV", 64, 32, 0)]
    [DataRow("dK/dV", 128, 64, 0)]
    public void FusedKernelsCarryTheirBoundsAsLoaded(string kernel, int headDim, int blockSize, int groups)
    {
        var method = kernel switch
        {
            "forward" => FlashKernels.ForwardKernelFor<Fp16>(headDim, blockSize).Method,
            "dQ" => FlashKernels.QueryGradKernelFor<Fp16>(headDim, blockSize).Method,
            _ => FlashKernels.KeyValueGradKernelFor<Fp16>(headDim, blockSize).Method,
        };
        using var compiler = new OfflinePtxCompiler();
        var ilgpu = compiler.Compile(method);
        var loaded = KernelLoader.Transform(ilgpu, KernelLoader.StagesOf(method, KernelLoader.DefaultStages));
        Assert.AreEqual(groups > 0, loaded.Contains($".maxntid {TokenGroup.Threads}, 1, 1\n.minnctapersm {groups}\n{{", StringComparison.Ordinal), $"{kernel} D{headDim} B{blockSize}: {groups} groups");
        Assert.IsFalse(loaded.Contains(".minnctapersm", StringComparison.Ordinal) && groups == 0, "no bounds where ptxas chooses");
        Assert.AreEqual(0, KernelLoader.StagesOf(method, []).Count, "an accelerator without stages loads the kernel untouched");
    }
}
