using SparseAttention.Accelerators;
using SparseAttention.Layouts;
using SparseAttention.Planning;
using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>A block-sparse op test problem: a layout, a shape, and fresh random device inputs with exact copies.</summary>
internal sealed class OpCase<T> : IDisposable
    where T : unmanaged
{
    private readonly List<IDisposable> owned = [];

    public OpCase(ComputeDevice device, BlockLayout layout, int batch, int headDim, Random random)
    {
        Device = device;
        Plan = BlockSparsePlan.For(layout);
        Shape = new AttentionShape(batch, layout.Ctx, layout.Heads, headDim);
        Random = random;
    }

    public ComputeDevice Device { get; }

    public BlockSparsePlan Plan { get; }

    public AttentionShape Shape { get; }

    public Random Random { get; }

    public int[] DenseShape => [Shape.Batch, Shape.Ctx, Shape.Embedding];

    /// <summary>A random dense tensor and its exact values.</summary>
    public (DeviceTensor<T> Tensor, double[] Exact) Dense(double scale = 1.0) => Upload(Shape.Elements, DenseShape, scale);

    /// <summary>A random weight tensor and its exact values.</summary>
    public (DeviceTensor<T> Tensor, double[] Exact) Weights(double scale = 1.0) =>
        Upload(Reference.BlockSparseReference.WeightCount(Plan, Shape), WeightShape, scale);

    /// <summary>A poisoned dense output.</summary>
    public DeviceTensor<T> PoisonedDense() => Poisoned(DenseShape);

    /// <summary>A poisoned weight output.</summary>
    public DeviceTensor<T> PoisonedWeights() => Poisoned(WeightShape);

    public void Dispose() => owned.ForEach(d => d.Dispose());

    private int[] WeightShape => [Shape.Batch, Plan.Heads, Plan.BlocksPerHead, Plan.BlockSize, Plan.BlockSize];

    private (DeviceTensor<T>, double[]) Upload(long count, int[] shape, double scale)
    {
        var (values, exact) = TestData.Values<T>(Random, count, scale);
        var tensor = DeviceTensor<T>.FromSpan(Device, values, shape);
        owned.Add(tensor);
        return (tensor, exact);
    }

    private DeviceTensor<T> Poisoned(int[] shape)
    {
        var tensor = DeviceTensor<T>.Allocate(Device, shape);
        tensor.Fill(TestData.Poison<T>());
        owned.Add(tensor);
        return tensor;
    }
}
