using SparseAttention.Accelerators;

namespace SparseAttention.Tests.Support;

/// <summary>One shared device per kind for the whole run: creating a context and compiling kernels is the slow part.</summary>
internal static class TestDevices
{
    public const string Cpu = "cpu";
    public const string Cuda = "cuda";

    private static readonly Lazy<ComputeDevice> CpuDevice = new(ComputeDevice.CreateCpu);
    private static readonly Lazy<ComputeDevice?> CudaDevice = new(() => ComputeDevice.HasCuda() ? ComputeDevice.CreateCuda() : null);

    /// <summary>The device of that kind; CUDA absent makes the test inconclusive (shown as skipped).</summary>
    public static ComputeDevice Get(string kind)
    {
        // On a GPU machine the CPU cases can be left out: SPARSE_ATTENTION_DEVICES=cuda.
        if (Environment.GetEnvironmentVariable("SPARSE_ATTENTION_DEVICES") is { } only && !only.Split(',').Contains(kind))
        {
            throw new AssertInconclusiveException($"{kind} excluded by SPARSE_ATTENTION_DEVICES={only}");
        }

        if (kind == Cpu)
        {
            return CpuDevice.Value;
        }

        return CudaDevice.Value ?? throw new AssertInconclusiveException("no CUDA device on this machine");
    }

    /// <summary>Whether a CUDA device is present.</summary>
    public static bool HasCuda => CudaDevice.Value is not null;

    /// <summary>Disposes whatever was created.</summary>
    public static void DisposeAll()
    {
        if (CpuDevice.IsValueCreated)
        {
            CpuDevice.Value.Dispose();
        }

        if (CudaDevice.IsValueCreated)
        {
            CudaDevice.Value?.Dispose();
        }
    }
}

[TestClass]
public static class AssemblyHooks
{
    [AssemblyCleanup]
    public static void Cleanup() => TestDevices.DisposeAll();
}
