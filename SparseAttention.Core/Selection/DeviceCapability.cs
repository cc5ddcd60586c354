namespace SparseAttention.Selection;

/// <summary>What the selector needs to know of a device.</summary>
/// <param name="IsCuda">A CUDA GPU (else ILGPU's CPU accelerator).</param>
/// <param name="ComputeCapability">CUDA compute capability times ten (90 for Hopper), 0 on the CPU accelerator.</param>
/// <param name="SharedMemoryPerGroup">Bytes of shared memory a group may use without opting in.</param>
public readonly record struct DeviceCapability(bool IsCuda, int ComputeCapability, long SharedMemoryPerGroup);
