using SparseAttention.Attention;
using SparseAttention.Layouts;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>
/// The Hopper family's fused forward and backward (wgmma) against the float64 reference, on the
/// features its kernels branch on: full and partial blocks, empty rows and columns, the decoding rule inside a block,
/// dense masks, both head dims and block sizes. The CPU accelerator runs its C# twin; CUDA needs an sm_90 card.
/// </summary>
public abstract class HopperAttentionTests<T>
    where T : unmanaged
{
    [TestMethod]
    [DataRow(TestDevices.Cpu, "all", 64, 64)]
    [DataRow(TestDevices.Cpu, "all", 128, 64)]
    [DataRow(TestDevices.Cpu, "custom", 64, 64)]
    [DataRow(TestDevices.Cpu, "autoregress", 128, 64)]
    [DataRow(TestDevices.Cpu, "dense", 64, 64)]
    [DataRow(TestDevices.Cpu, "local", 128, 128)]
    [DataRow(TestDevices.Cuda, "all", 64, 64)]
    [DataRow(TestDevices.Cuda, "all", 128, 128)]
    [DataRow(TestDevices.Cuda, "custom", 64, 64)]
    [DataRow(TestDevices.Cuda, "custom", 128, 128)]
    [DataRow(TestDevices.Cuda, "autoregress", 64, 64)]
    [DataRow(TestDevices.Cuda, "autoregress", 128, 64)]
    [DataRow(TestDevices.Cuda, "dense", 64, 64)]
    [DataRow(TestDevices.Cuda, "dense", 128, 64)]
    [DataRow(TestDevices.Cuda, "local", 64, 128)]
    [DataRow(TestDevices.Cuda, "fixed", 64, 64)]
    [DataRow(TestDevices.Cuda, "fixed", 128, 64)]
    public void FeatureMatchesReference(string device, string feature, int headDim, int blockSize)
    {
        if (device == TestDevices.Cuda && TestDevices.Get(device).Capability.ComputeCapability != 90)
        {
            throw new AssertInconclusiveException("the Hopper family runs on compute capability 9.0 only");
        }

        var cpu = device == TestDevices.Cpu;
        // On the CPU, `all` walks up to four steps, so every buffer plan comes round again: the forward's three V buffers
        // and dK/dV's three Q buffers at head dim 64, the forward's barrier-freed buffers at 128.
        var shape = cpu ? new AttentionShape(1, (feature == "all" ? 4 : 2) * blockSize, 2, headDim) : new AttentionShape(2, 512, 4, headDim);
        var hopper = new AttentionOptions { Hopper = true };
        var attentionCase = feature switch
        {
            "all" => AttentionCase.ForPattern(shape, AttentionPattern.All, blockSize, hopper),
            "local" => AttentionCase.ForPattern(shape, AttentionPattern.Local(2 * blockSize), blockSize, hopper),
            "fixed" => AttentionCase.ForPattern(shape, AttentionPattern.Fixed(2 * blockSize, 2, 1), blockSize, hopper),
            "custom" => AttentionCase.ForLayout("hopper custom", shape, AttentionFeatures.CustomLayout(shape, blockSize), hopper),
            "autoregress" => AttentionCase.ForLayout("hopper autoregress", shape, AttentionFeatures.CustomLayout(shape, blockSize), hopper with { AutoregressAtKey = shape.Ctx / 2 + 8 }),
            "dense" => AttentionCase.ForDense("hopper dense", shape, (h, q, k) => k <= q && (q - k + h) % 3 != 1, hopper),
            _ => throw new ArgumentOutOfRangeException(nameof(feature), feature, "no such feature"),
        };
        AttentionCheck.AgainstReference<T>(device, attentionCase, fused: true);
    }
}

[TestClass]
public sealed class HopperFp16AttentionTests : HopperAttentionTests<Half>;

[TestClass]
public sealed class HopperBf16AttentionTests : HopperAttentionTests<BFloat16>;
