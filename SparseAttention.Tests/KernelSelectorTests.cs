using SparseAttention.Attention;
using SparseAttention.Selection;
using SparseAttention.Tensors;

namespace SparseAttention.Tests;

/// <summary>The kernel selector as a pure function: every dtype, option and device kind, with no GPU needed.</summary>
[TestClass]
public sealed class KernelSelectorTests
{
    private static readonly DeviceCapability Cpu = new(IsCuda: false, ComputeCapability: 0, SharedMemoryPerGroup: 48 << 10);
    private static readonly DeviceCapability Hopper = new(IsCuda: true, ComputeCapability: 90, SharedMemoryPerGroup: 48 << 10);
    private static readonly DeviceCapability Ampere = new(IsCuda: true, ComputeCapability: 80, SharedMemoryPerGroup: 48 << 10);
    private static readonly DeviceCapability Blackwell = new(IsCuda: true, ComputeCapability: 100, SharedMemoryPerGroup: 48 << 10);

    [TestMethod]
    public void FusedByDefaultOnCudaWhereItApplies()
    {
        Assert.AreEqual(KernelPath.Fused, KernelSelector.ForAttention<Half>(Ampere, 64, 64, AttentionOptions.Default));
        Assert.AreEqual(KernelPath.Fused, KernelSelector.ForAttention<BFloat16>(Hopper, 128, 32, AttentionOptions.Default));
        Assert.AreEqual(KernelPath.TensorCores, KernelSelector.ForAttention<Half>(Hopper, 48, 64, AttentionOptions.Default), "head dim 48: no fused kernel");
        Assert.AreEqual(KernelPath.TensorCores, KernelSelector.ForAttention<Half>(Hopper, 64, 16, AttentionOptions.Default), "block 16: no fused kernel");
        Assert.AreEqual(KernelPath.TensorCores, KernelSelector.ForAttention<Half>(Cpu, 64, 64, AttentionOptions.Default), "the CPU accelerator runs the ops unless asked");
        Assert.AreEqual(KernelPath.TensorCores, KernelSelector.ForAttention<Half>(Hopper, 64, 64, new AttentionOptions { Fused = false }));
        Assert.AreEqual(KernelPath.Fused, KernelSelector.ForAttention<Half>(Cpu, 32, 32, new AttentionOptions { Fused = true }));
    }

    [TestMethod]
    public void HopperFamilyByDefaultOnSm90WhereItCovers()
    {
        Assert.AreEqual(KernelPath.FusedHopper, KernelSelector.ForAttention<Half>(Hopper, 64, 64, AttentionOptions.Default));
        Assert.AreEqual(KernelPath.FusedHopper, KernelSelector.ForAttention<BFloat16>(Hopper, 128, 128, AttentionOptions.Default));
        Assert.AreEqual(KernelPath.Fused, KernelSelector.ForAttention<Half>(Hopper, 32, 64, AttentionOptions.Default), "head dim 32: the portable family");
        Assert.AreEqual(KernelPath.Fused, KernelSelector.ForAttention<Half>(Hopper, 64, 32, AttentionOptions.Default), "block 32: the portable family");
        Assert.AreEqual(KernelPath.Fused, KernelSelector.ForAttention<Half>(Ampere, 64, 64, AttentionOptions.Default), "other devices: the portable family");
        Assert.AreEqual(KernelPath.Fused, KernelSelector.ForAttention<Half>(Cpu, 64, 64, new AttentionOptions { Fused = true }), "the CPU runs the twin only when asked");
        Assert.AreEqual(KernelPath.FusedHopper, KernelSelector.ForAttention<Half>(Hopper, 64, 64, new AttentionOptions { Hopper = true }));
        Assert.AreEqual(KernelPath.FusedHopper, KernelSelector.ForAttention<BFloat16>(Hopper, 128, 128, new AttentionOptions { Hopper = true }));
        Assert.AreEqual(KernelPath.Fused, KernelSelector.ForAttention<Half>(Hopper, 64, 64, new AttentionOptions { Hopper = false }));
        Assert.AreEqual(KernelPath.FusedHopper, KernelSelector.ForAttention<Half>(Cpu, 64, 64, new AttentionOptions { Hopper = true }), "the CPU runs the C# twin when asked");
        Assert.AreEqual(KernelPath.FusedHopper, KernelSelector.ForAttention<Half>(Cpu, 64, 64, new AttentionOptions { Hopper = true, Fused = true }));
    }

    [TestMethod]
    public void HopperRequestsThatCannotRunNameTheRule()
    {
        var block = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForAttention<Half>(Hopper, 64, 32, new AttentionOptions { Hopper = true }));
        Assert.AreEqual("options", block.ParamName);
        StringAssert.Contains(block.Message, "Hopper needs the fused path, Half or BFloat16 inputs, head dim 64 or 128 and block size 64 or 128; this call has Half, head dim 64, block size 32");
        var unfused = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForAttention<Half>(Hopper, 64, 64, new AttentionOptions { Hopper = true, Fused = false }));
        StringAssert.Contains(unfused.Message, "Fused false");
        var device = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForAttention<Half>(Ampere, 64, 64, new AttentionOptions { Hopper = true }));
        StringAssert.Contains(device.Message, "Hopper needs a compute capability 9.0 device (or the CPU accelerator, which runs its C# twin); this device has 8.0");
        var blackwell = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForAttention<Half>(Blackwell, 64, 64, new AttentionOptions { Hopper = true }));
        StringAssert.Contains(blackwell.Message, "this device has 10.0", "wgmma is sm_90a only: later architectures do not have it");
        var single = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForAttention<float>(Cpu, 64, 64, new AttentionOptions { Hopper = true }));
        Assert.AreEqual("options", single.ParamName);
        StringAssert.Contains(single.Message, "this call has Single, head dim 64, block size 64");
    }

    [TestMethod]
    public void FloatInputsChooseFmaTf32OrBf16Scores()
    {
        foreach (var device in new[] { Cpu, Hopper })
        {
            Assert.AreEqual(KernelPath.Fma, KernelSelector.ForAttention<float>(device, 64, 64, AttentionOptions.Default));
            Assert.AreEqual(KernelPath.Tf32, KernelSelector.ForAttention<float>(device, 64, 64, new AttentionOptions { AllowTf32 = true }));
            Assert.AreEqual(KernelPath.FmaBf16Scores, KernelSelector.ForAttention<float>(device, 64, 64, new AttentionOptions { BFloat16Scores = true }));
        }

        Assert.AreEqual(KernelPath.TensorCores, KernelSelector.ForAttention<Half>(Cpu, 64, 64, new AttentionOptions { AllowTf32 = true }), "TF32 is for float inputs");
    }

    [TestMethod]
    public void ImpossibleRequestsNameTheOptionsAndTheRule()
    {
        var fused = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForAttention<float>(Hopper, 64, 64, new AttentionOptions { Fused = true }));
        Assert.AreEqual("options", fused.ParamName);
        StringAssert.Contains(fused.Message, "Fused needs Half or BFloat16 inputs, head dim 32, 64 or 128 and block size 32, 64 or 128; this call has Single, head dim 64, block size 64");
        var scores = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForAttention<Half>(Cpu, 64, 64, new AttentionOptions { BFloat16Scores = true }));
        StringAssert.Contains(scores.Message, "BFloat16Scores is for float inputs");
        var both = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForAttention<float>(Cpu, 64, 64, new AttentionOptions { BFloat16Scores = true, AllowTf32 = true }));
        StringAssert.Contains(both.Message, "cannot be combined with AllowTf32");
        Assert.ThrowsExactly<NotSupportedException>(() => KernelSelector.ForAttention<double>(Cpu, 64, 64, AttentionOptions.Default));
    }

    [TestMethod]
    public void OpsChooseByInputWeightTypeAndAllowTf32()
    {
        Assert.AreEqual(KernelPath.Fma, KernelSelector.ForOps<float, float>(allowTf32: false));
        Assert.AreEqual(KernelPath.Tf32, KernelSelector.ForOps<float, float>(allowTf32: true));
        Assert.AreEqual(KernelPath.FmaBf16Scores, KernelSelector.ForOps<float, BFloat16>(allowTf32: false));
        Assert.AreEqual(KernelPath.TensorCores, KernelSelector.ForOps<Half, Half>(allowTf32: false));
        Assert.AreEqual(KernelPath.TensorCores, KernelSelector.ForOps<BFloat16, BFloat16>(allowTf32: true), "TF32 is for float inputs");
    }

    [TestMethod]
    public void OpsRejectWeightsThatDoNotFitTheInputs()
    {
        var tf32 = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForOps<float, BFloat16>(allowTf32: true));
        Assert.AreEqual("allowTf32", tf32.ParamName);
        var weights = Assert.ThrowsExactly<ArgumentException>(() => KernelSelector.ForOps<Half, BFloat16>(allowTf32: false));
        Assert.AreEqual("weights", weights.ParamName);
        Assert.ThrowsExactly<NotSupportedException>(() => KernelSelector.ForOps<double, double>(allowTf32: false));
    }
}
