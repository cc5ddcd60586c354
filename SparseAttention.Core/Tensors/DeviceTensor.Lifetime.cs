using ILGPU;
using ILGPU.Runtime;
using SparseAttention.Ops;

namespace SparseAttention.Tensors;

// Two counts keep a buffer alive: holds on the tensor (the caller's handle and each tape retain) and references on
// the storage (tensors sharing it, after the scheduler restored an evicted tensor from its recomputed twin).
public sealed partial class DeviceTensor<T>
{
    private int holds = 1;
    private bool callerReleased;
    private bool evicted;

    bool IDeviceTensor.ReleasedByCaller => callerReleased;

    bool IDeviceTensor.IsHeld => holds > 0;

    bool IDeviceTensor.CanEvict => ownsBuffer && storage is not null;

    void IDeviceTensor.Retain() => holds++;

    void IDeviceTensor.Release() => Drop();

    void IDeviceTensor.Evict()
    {
        FreeStorage();
        evicted = true;
    }

    void IDeviceTensor.ShareFrom(IDeviceTensor recomputed)
    {
        var source = (DeviceTensor<T>)recomputed;
        storage = source.storage!;
        storage.References++;
        viewValue = source.viewValue;
        evicted = false;
    }

    void IDeviceTensor.AddInPlace(IDeviceTensor addend) => TensorOps.AddInPlace(this, (DeviceTensor<T>)addend);

    private void Drop()
    {
        if (--holds == 0)
        {
            FreeStorage();
        }
    }

    private void FreeStorage()
    {
        if (storage is not null && --storage.References == 0)
        {
            Device.Release(storage.Buffer);
        }

        storage = null;
    }

    private void ThrowIfUnreadable()
    {
        ObjectDisposedException.ThrowIf(holds == 0, this);
        if (evicted)
        {
            throw new InvalidOperationException("this tensor was evicted by the tape's recompute scheduler after the caller disposed it; the tape restores it in backward");
        }
    }

    private sealed class Storage(MemoryBuffer1D<T, Stride1D.Dense> buffer)
    {
        public MemoryBuffer1D<T, Stride1D.Dense> Buffer { get; } = buffer;

        public int References { get; set; } = 1;
    }
}
