using SparseAttention.Layouts;
using SparseAttention.Ops;
using SparseAttention.Reference;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>Every block-sparse op against the float64 reference, per element type (subclasses below).</summary>
public abstract class BlockSparseOpsTests<T>
    where T : unmanaged
{
    [TestMethod]
    [DataRow(TestDevices.Cpu, 16)]
    [DataRow(TestDevices.Cpu, 32)]
    [DataRow(TestDevices.Cpu, 64)]
    [DataRow(TestDevices.Cpu, 128)]
    [DataRow(TestDevices.Cuda, 16)]
    [DataRow(TestDevices.Cuda, 32)]
    [DataRow(TestDevices.Cuda, 64)]
    [DataRow(TestDevices.Cuda, 128)]
    public void EveryOpAtEveryBlockSize(string device, int blockSize)
    {
        var ctx = device == TestDevices.Cpu ? 2 * blockSize : 8 * blockSize;
        RunAllOps(device, BlockLayout.All(ctx, blockSize, 2), batch: 1, headDim: 16);
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu, 48)]
    [DataRow(TestDevices.Cpu, 64)]
    [DataRow(TestDevices.Cpu, 80)]
    [DataRow(TestDevices.Cpu, 96)]
    [DataRow(TestDevices.Cpu, 112)]
    [DataRow(TestDevices.Cpu, 128)]
    [DataRow(TestDevices.Cuda, 48)]
    [DataRow(TestDevices.Cuda, 80)]
    [DataRow(TestDevices.Cuda, 112)]
    public void EveryOpAtEveryHeadDim(string device, int headDim)
    {
        // Head dims 16 and 32 run in the tests above; each other multiple of 16 up to 128 at one small shape here.
        RunAllOps(device, BlockLayout.All(32, 16, 1), batch: 1, headDim: headDim);
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu, 64, 48)]
    [DataRow(TestDevices.Cpu, 32, 16)]
    [DataRow(TestDevices.Cuda, 64, 48)]
    [DataRow(TestDevices.Cuda, 64, 16)]
    [DataRow(TestDevices.Cuda, 128, 80)]
    public void EveryOpWithHeadDimsBelowAndAcrossTheBlock(string device, int blockSize, int headDim)
    {
        // The staged kernels split a 64-wide tile's quads among edge * headDim / 8 threads: head dims that do not divide
        // the tile edge leave a partial last pass, and blocks of 128 are staged 64 at a time.
        RunAllOps(device, BlockLayout.All(2 * blockSize, blockSize, 1), batch: 1, headDim: headDim);
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu, "per-head")]
    [DataRow(TestDevices.Cpu, "empty row and column")]
    [DataRow(TestDevices.Cpu, "awkward heads and batch")]
    [DataRow(TestDevices.Cuda, "per-head")]
    [DataRow(TestDevices.Cuda, "empty row and column")]
    [DataRow(TestDevices.Cuda, "awkward heads and batch")]
    [DataRow(TestDevices.Cuda, "head dim 128")]
    public void EveryOpOnAwkwardLayouts(string device, string variant)
    {
        var (layout, batch, headDim) = variant switch
        {
            "per-head" => (BlockLayout.Fixed(64, 16, 2, 32, 2, 1), 1, 16),
            "empty row and column" => (BlockLayout.Custom(new bool[,] { { true, false, false }, { false, false, false }, { true, false, true } }, 16, 1), 1, 32),
            "awkward heads and batch" => (BlockLayout.Local(48, 16, 3, 16), 2, 16),
            _ => (BlockLayout.Strided(512, 32, 4, 8), 2, 128),
        };
        RunAllOps(device, layout, batch, headDim);
    }

    [TestMethod]
    [DataRow(TestDevices.Cpu)]
    [DataRow(TestDevices.Cuda)]
    public void SoftmaxAutoregressAtKeyOnBidirectionalLayoutAndEmptyRows(string device)
    {
        // Block row 1 is empty (zeros), and autoregressAtKey 20 removes keys >= 20 that lie after the query.
        var blocks = new bool[,] { { true, true, false }, { false, false, false }, { true, true, true } };
        var layout = BlockLayout.Custom(blocks, 16, 2, (h, q, k) => (q + k + h) % 7 != 0);
        using var c = new OpCase<T>(TestDevices.Get(device), layout, 1, 16, TestData.NewRandom(nameof(SoftmaxAutoregressAtKeyOnBidirectionalLayoutAndEmptyRows)));
        var (scores, exact) = c.Weights(4.0);
        var output = c.PoisonedWeights();
        BlockSparseOps.Softmax(scores, c.Plan, output, 0.5f, useMask: true, autoregressAtKey: 20);
        var expected = BlockSparseReference.Softmax(exact, c.Plan, c.Shape, 0.5, true, 20);
        Check(output, expected, "softmax with autoregressAtKey");
    }

    private static void RunAllOps(string device, BlockLayout layout, int batch, int headDim)
    {
        using var c = new OpCase<T>(TestDevices.Get(device), layout, batch, headDim, TestData.NewRandom($"{typeof(T).Name} {layout.Name} block {layout.BlockSize}"));
        var (left, leftExact) = c.Dense();
        var (right, rightExact) = c.Dense();
        var (weights, weightsExact) = c.Weights();

        var sdd = c.PoisonedWeights();
        BlockSparseOps.QueryKey(left, right, c.Plan, sdd);
        Check(sdd, BlockSparseReference.QueryKey(leftExact, rightExact, c.Plan, c.Shape), "nt");

        var nn = c.PoisonedDense();
        BlockSparseOps.WeightValue(weights, right, c.Plan, nn);
        Check(nn, BlockSparseReference.WeightValue(weightsExact, rightExact, c.Plan, c.Shape, transposed: false), "nn");

        var tn = c.PoisonedDense();
        BlockSparseOps.WeightValueTransposed(weights, right, c.Plan, tn);
        Check(tn, BlockSparseReference.WeightValue(weightsExact, rightExact, c.Plan, c.Shape, transposed: true), "tn");

        var (scores, scoresExact) = c.Weights(3.0);
        var masked = c.PoisonedWeights();
        BlockSparseOps.Softmax(scores, c.Plan, masked, 0.75f);
        var probabilities = BlockSparseReference.Softmax(scoresExact, c.Plan, c.Shape, 0.75);
        Check(masked, probabilities, "masked softmax");
        AssertExactZerosWhereExcluded(masked.ToArray(), probabilities);

        var plain = c.PoisonedWeights();
        BlockSparseOps.Softmax(scores, c.Plan, plain, 0.75f, useMask: false);
        Check(plain, BlockSparseReference.Softmax(scoresExact, c.Plan, c.Shape, 0.75, useMask: false), "plain softmax");

        var (probabilityGrad, probabilityGradExact) = c.Weights();
        var grad = c.PoisonedWeights();
        var probabilitiesExact = Numeric.ToDouble<T>(masked.ToArray());
        BlockSparseOps.SoftmaxGrad(masked, probabilityGrad, c.Plan, grad, 0.75f);
        Check(grad, BlockSparseReference.SoftmaxGrad(probabilitiesExact, probabilityGradExact, c.Plan, c.Shape, 0.75), "softmax grad", gradient: true);
    }

    private static void Check(DeviceTensor<T> actual, double[] expected, string what, bool gradient = false)
    {
        var naiveError = Errors.Relative(Errors.RoundTo<T>(expected), expected);
        Errors.AssertWithin(Errors.RelativeOf(actual.ToArray(), expected), Errors.Tolerance<T>(naiveError, gradient), what);
    }

    private static void AssertExactZerosWhereExcluded(T[] actual, double[] expected)
    {
        for (var i = 0; i < expected.Length; i++)
        {
            if (expected[i] == 0)
            {
                Assert.AreEqual(0.0, Numeric.ToDouble(actual[i]), $"excluded element {i} must be exactly 0");
            }
        }
    }
}

[TestClass]
public sealed class BlockSparseOpsFp32Tests : BlockSparseOpsTests<float>;

[TestClass]
public sealed class BlockSparseOpsFp16Tests : BlockSparseOpsTests<Half>;

[TestClass]
public sealed class BlockSparseOpsBf16Tests : BlockSparseOpsTests<BFloat16>;
