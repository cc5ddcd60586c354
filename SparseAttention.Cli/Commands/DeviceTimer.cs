using ILGPU.Runtime;

namespace SparseAttention.Cli.Commands;

/// <summary>Times GPU work with device events (ILGPU profiling markers) after warm-up; reports the median.</summary>
internal static class DeviceTimer
{
    public static double MedianMilliseconds(Accelerator accelerator, Action work, int warmup = 3, int runs = 20)
    {
        for (var i = 0; i < warmup; i++)
        {
            work();
        }

        accelerator.Synchronize();
        var times = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            using var start = accelerator.DefaultStream.AddProfilingMarker();
            work();
            using var end = accelerator.DefaultStream.AddProfilingMarker();
            end.Synchronize();
            times[i] = end.MeasureFrom(start).TotalMilliseconds;
        }

        Array.Sort(times);
        return times[runs / 2];
    }
}
