using System.Runtime.InteropServices;
using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>
/// Lets a CUDA kernel take the device's whole shared memory per group: without the opt-in a launch asking for more than
/// 48 KB of dynamic shared memory fails ("invalid argument"), and ILGPU 1.5.3 has no call for it.
/// </summary>
internal static partial class SharedMemoryLimit
{
    // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN and CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
    private const int DeviceOptInBytes = 97;
    private const int FunctionDynamicBytes = 8;

    /// <summary>Raises <paramref name="kernel"/>'s dynamic shared memory limit to what its device allows a group.</summary>
    /// <exception cref="InvalidOperationException">The driver refused.</exception>
    public static void RaiseToDevice(CudaKernel kernel, CudaAccelerator accelerator)
    {
        Check(DeviceAttribute(out var bytes, DeviceOptInBytes, accelerator.DeviceId), "cuDeviceGetAttribute");
        Check(FunctionAttribute(kernel.FunctionPtr, FunctionDynamicBytes, bytes), "cuFuncSetAttribute");
    }

    private static void Check(int status, string call)
    {
        if (status != 0)
        {
            throw new InvalidOperationException($"{call} failed with CUDA error {status}");
        }
    }

    [LibraryImport("cuda", EntryPoint = "cuDeviceGetAttribute")]
    private static partial int DeviceAttribute(out int value, int attribute, int device);

    [LibraryImport("cuda", EntryPoint = "cuFuncSetAttribute")]
    private static partial int FunctionAttribute(IntPtr function, int attribute, int value);
}
