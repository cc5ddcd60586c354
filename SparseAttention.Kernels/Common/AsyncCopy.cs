using ILGPU.Runtime.Cuda;

namespace SparseAttention.Kernels.Common;

/// <summary>
/// <c>cp.async</c>: 16-byte copies from global to shared memory that run while the warp computes (CUDA; elsewhere the
/// callers copy at once, and commit and wait do nothing). Kernels
/// using it need the loader's depot stage: with <c>cp.async</c> in a kernel ptxas keeps every inline-asm operand depot in
/// local memory (docs/tensor-cores.md).
/// </summary>
internal static class AsyncCopy
{
    /// <summary>The global-window address of a device pointer taken on the host (<c>cvta.to.global</c>).</summary>
    public static long ToGlobal(long address)
    {
        if (!CudaAsm.IsSupported)
        {
            return address;
        }

        Output<long> global = default;
        Input<long> generic = address;
        CudaAsm.EmitRef("cvta.to.global.u64 %0, %1;", ref global, ref generic);
        return global.Value;
    }

    /// <summary>Starts copying 16 bytes at global address <paramref name="source"/> to shared address <paramref name="target"/>.</summary>
    public static void Copy16(uint target, long source)
    {
        Input<uint> shared = target;
        Input<long> global = source;
        CudaAsm.EmitRef("cp.async.cg.shared.global [%0], [%1], 16;", ref shared, ref global);
    }

    /// <summary>Passes a staging may take: <see cref="CopyPasses"/> writes out this many.</summary>
    public const int MaxPasses = 8;

    /// <summary>
    /// A thread's share of a staging, written out pass by pass (neither ILGPU nor ptxas unrolled the loop, which spent 12
    /// instructions per copy): <paramref name="passes"/> copies <paramref name="targetStep"/> and
    /// <paramref name="sourceStep"/> bytes apart, and one more where <paramref name="partial"/> (this thread's row of a
    /// last, incomplete pass exists); at most <see cref="MaxPasses"/>. For constant counts the conditions fold away.
    /// </summary>
    public static void CopyPasses(int passes, uint target, uint targetStep, long source, long sourceStep, bool partial)
    {
        CopyPass(0, passes, target, targetStep, source, sourceStep, partial);
        CopyPass(1, passes, target, targetStep, source, sourceStep, partial);
        CopyPass(2, passes, target, targetStep, source, sourceStep, partial);
        CopyPass(3, passes, target, targetStep, source, sourceStep, partial);
        CopyPass(4, passes, target, targetStep, source, sourceStep, partial);
        CopyPass(5, passes, target, targetStep, source, sourceStep, partial);
        CopyPass(6, passes, target, targetStep, source, sourceStep, partial);
        CopyPass(7, passes, target, targetStep, source, sourceStep, partial);
    }

    /// <summary>Throws unless one staging of <paramref name="threads"/> threads covers tiles of <paramref name="rows"/> rows of <paramref name="features"/> 16-bit elements in <see cref="MaxPasses"/> 16-byte copies each.</summary>
    /// <exception cref="InvalidOperationException">It does not (a kernel specialised for a head dim too wide).</exception>
    public static void RequireCovered(int threads, int features, int rows)
    {
        if (rows * (features >> 3) > MaxPasses * threads)
        {
            throw new InvalidOperationException($"a staging of {threads} threads does not cover tiles of {rows} rows of {features} features in {MaxPasses} passes");
        }
    }

    // Copy `pass` of CopyPasses.
    private static void CopyPass(int pass, int passes, uint target, uint targetStep, long source, long sourceStep, bool partial)
    {
        if (pass < passes || (pass == passes && partial))
        {
            Copy16(target + (uint)pass * targetStep, source + pass * sourceStep);
        }
    }

    /// <summary>Closes the copies started since the last commit into one group that <see cref="WaitAll"/> waits for.</summary>
    public static void Commit()
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cp.async.commit_group;");
        }
    }

    /// <summary>Waits until every copy this thread committed has landed; a group barrier then makes them visible to all.</summary>
    public static void WaitAll()
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cp.async.wait_group 0;");
        }
    }
}
