using System.Text.RegularExpressions;

namespace SparseAttention.Kernels.Common;

/// <summary>The retargeting of modules that use Hopper-only instructions.</summary>
internal static partial class PtxStages
{
    /// <summary>
    /// Retargets a module that uses <c>wgmma</c> from ILGPU's <c>.target sm_80</c> (the lower of SM_80 and the device)
    /// to <c>sm_90a</c>, the only target that has it; a module without <c>wgmma</c> is left as it is. Only the Hopper
    /// family's kernels use it, and the selector runs them only on sm_90 devices.
    /// </summary>
    public static string TargetHopper(string ptx) =>
        ptx.Contains("wgmma.", StringComparison.Ordinal) ? Target().Replace(ptx, ".target sm_90a", 1) : ptx;

    [GeneratedRegex(@"\.target\s+sm_\d+a?")]
    private static partial Regex Target();
}
