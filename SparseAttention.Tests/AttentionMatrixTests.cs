using SparseAttention.Tensors;
using SparseAttention.Tests.Support;
using static SparseAttention.Tests.Support.AttentionFeatures;

namespace SparseAttention.Tests;

/// <summary>Which kernels an attention test asks for: the path is an axis of the matrix, never left to the device.</summary>
public interface IAttentionPath
{
    /// <summary>True for the fused kernels, false for the unfused ops (SDD, softmax, DSD).</summary>
    static abstract bool Fused { get; }
}

/// <summary>The fused kernels (fp16 and bf16 only: a fused fp32 class does not exist).</summary>
public readonly struct FusedPath : IAttentionPath
{
    /// <inheritdoc/>
    public static bool Fused => true;
}

/// <summary>The unfused ops.</summary>
public readonly struct UnfusedPath : IAttentionPath
{
    /// <inheritdoc/>
    public static bool Fused => false;
}

/// <summary>
/// Device x path x dtype x feature: every attention feature, forward and backward, against the float64 dense reference
/// (o, dq, dk and dv in norm and element by element, exact zeros where nothing is allowed).
/// </summary>
public abstract class AttentionMatrixTests<T, TPath>
    where T : unmanaged
    where TPath : IAttentionPath
{
    [TestMethod]
    [DataRow(TestDevices.Cpu, All)]
    [DataRow(TestDevices.Cpu, Local)]
    [DataRow(TestDevices.Cpu, Strided)]
    [DataRow(TestDevices.Cpu, Fixed)]
    [DataRow(TestDevices.Cpu, Dense)]
    [DataRow(TestDevices.Cpu, DenseAutoregress)]
    [DataRow(TestDevices.Cpu, Custom)]
    [DataRow(TestDevices.Cpu, AutoregressInsideTile)]
    [DataRow(TestDevices.Cpu, AutoregressOnTileBoundary)]
    [DataRow(TestDevices.Cpu, ExplicitScale)]
    [DataRow(TestDevices.Cpu, Recompute)]
    [DataRow(TestDevices.Cuda, All)]
    [DataRow(TestDevices.Cuda, Local)]
    [DataRow(TestDevices.Cuda, Strided)]
    [DataRow(TestDevices.Cuda, Fixed)]
    [DataRow(TestDevices.Cuda, Dense)]
    [DataRow(TestDevices.Cuda, DenseAutoregress)]
    [DataRow(TestDevices.Cuda, Custom)]
    [DataRow(TestDevices.Cuda, AutoregressInsideTile)]
    [DataRow(TestDevices.Cuda, AutoregressOnTileBoundary)]
    [DataRow(TestDevices.Cuda, ExplicitScale)]
    [DataRow(TestDevices.Cuda, Recompute)]
    public void FeatureMatchesReference(string device, string feature)
    {
        // A GPU run under compute-sanitizer takes a few features: SPARSE_ATTENTION_FEATURES=custom,autoregress inside a tile.
        if (Environment.GetEnvironmentVariable("SPARSE_ATTENTION_FEATURES") is { } only && !only.Split(',').Contains(feature))
        {
            throw new AssertInconclusiveException($"{feature} excluded by SPARSE_ATTENTION_FEATURES={only}");
        }

        AttentionCheck.AgainstReference<T>(device, For(feature, device), TPath.Fused);
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu, 32, 64)]
    [DataRow(TestDevices.Cpu, 64, 128)]
    [DataRow(TestDevices.Cpu, 128, 32)]
    [DataRow(TestDevices.Cuda, 32, 32)]
    [DataRow(TestDevices.Cuda, 32, 64)]
    [DataRow(TestDevices.Cuda, 32, 128)]
    [DataRow(TestDevices.Cuda, 64, 32)]
    [DataRow(TestDevices.Cuda, 64, 64)]
    [DataRow(TestDevices.Cuda, 64, 128)]
    [DataRow(TestDevices.Cuda, 128, 32)]
    [DataRow(TestDevices.Cuda, 128, 64)]
    [DataRow(TestDevices.Cuda, 128, 128)]
    public void BlockSizeAndHeadDimMatchReference(string device, int blockSize, int headDim) =>
        AttentionCheck.AgainstReference<T>(device, ForBlockAndHeadDim(device, blockSize, headDim), TPath.Fused);
}

[TestClass]
public sealed class UnfusedFp32AttentionTests : AttentionMatrixTests<float, UnfusedPath>;

[TestClass]
public sealed class UnfusedFp16AttentionTests : AttentionMatrixTests<Half, UnfusedPath>;

[TestClass]
public sealed class UnfusedBf16AttentionTests : AttentionMatrixTests<BFloat16, UnfusedPath>;

[TestClass]
public sealed class FusedFp16AttentionTests : AttentionMatrixTests<Half, FusedPath>;

[TestClass]
public sealed class FusedBf16AttentionTests : AttentionMatrixTests<BFloat16, FusedPath>;
