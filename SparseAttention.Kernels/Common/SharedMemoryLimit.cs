using System.Runtime.InteropServices;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>
/// Lets a CUDA kernel's groups take more than 48 KB of dynamic shared memory: without the driver's opt-in such a launch
/// fails ("invalid argument"), and ILGPU 1.5.3 has no call for it.
/// </summary>
internal static partial class SharedMemoryLimit
{
    /// <summary>Dynamic shared memory a CUDA group gets without the opt-in.</summary>
    public const int Default = 48 << 10;

    // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
    private const int MaxDynamicSharedBytes = 8;

    /// <summary>Lets <paramref name="kernel"/>'s groups take <paramref name="bytes"/> of dynamic shared memory (nothing to do up to <see cref="Default"/>).</summary>
    /// <exception cref="InvalidOperationException">The driver refused (the device has less shared memory per group).</exception>
    public static void Allow(CudaKernel kernel, int bytes)
    {
        if (bytes <= Default)
        {
            return;
        }

        // The driver library is libcuda.so on Linux and nvcuda.dll on Windows, as ILGPU loads it.
        var status = OperatingSystem.IsWindows()
            ? SetAttributeWindows(kernel.FunctionPtr, MaxDynamicSharedBytes, bytes)
            : SetAttribute(kernel.FunctionPtr, MaxDynamicSharedBytes, bytes);
        if (status != 0)
        {
            throw new InvalidOperationException($"cuFuncSetAttribute could not allow {bytes} bytes of dynamic shared memory per group (CUDA error {status})");
        }
    }

    [LibraryImport("cuda", EntryPoint = "cuFuncSetAttribute")]
    private static partial int SetAttribute(IntPtr function, int attribute, int value);

    [LibraryImport("nvcuda", EntryPoint = "cuFuncSetAttribute")]
    private static partial int SetAttributeWindows(IntPtr function, int attribute, int value);
}
