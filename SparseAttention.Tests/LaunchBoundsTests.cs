using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Tests;

/// <summary>Which fused kernels are compiled with launch bounds, and that those survive the PTX stages.</summary>
[TestClass]
public sealed class LaunchBoundsTests
{
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
        var loaded = KernelLoader.Transform(compiler.Compile(method), KernelLoader.DefaultStages);
        Assert.AreEqual(groups > 0, loaded.Contains($".maxntid {TokenGroup.Threads}, 1, 1\n.minnctapersm {groups}\n", StringComparison.Ordinal), $"{kernel} D{headDim} B{blockSize}: {groups} groups");
        Assert.AreEqual(groups > 0, loaded.Contains(".minnctapersm", StringComparison.Ordinal), "no bounds where ptxas chooses");
    }

    [TestMethod]
    public void OneStagingCoversTheTilesOfEveryHeadDim()
    {
        AsyncCopy.RequireCovered(TokenGroup.Threads, 128, TokenGroup.Rows); // 64 rows of 128 features: 8 passes of 128 threads
        Assert.ThrowsExactly<InvalidOperationException>(() => AsyncCopy.RequireCovered(TokenGroup.Threads, 256, TokenGroup.Rows), "256 features would need 16 passes");
        Assert.ThrowsExactly<InvalidOperationException>(() => AsyncCopy.RequireCovered(64, 128, TokenGroup.Rows), "64 threads would need 16 passes");
    }
}
