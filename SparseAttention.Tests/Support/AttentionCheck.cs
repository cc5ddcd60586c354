using SparseAttention.Accelerators;
using SparseAttention.Autograd;
using SparseAttention.Reference;
using SparseAttention.Tensors;

namespace SparseAttention.Tests.Support;

/// <summary>Attention forward and backward against the float64 dense reference, with the tolerances of docs/numerics.md §2 and §4.</summary>
internal static class AttentionCheck
{
    private static readonly string[] Names = ["output", "dq", "dk", "dv"];

    /// <summary>
    /// Runs <paramref name="attentionCase"/> on the path <paramref name="fused"/> names, and its backward, on fresh random
    /// inputs; checks output and gradients against the float64 reference in norm, element by element, and that queries
    /// with nothing to attend to (keys nobody attends to) get exact zeros. Returns output, dq, dk and dv.
    /// </summary>
    public static double[][] AgainstReference<T>(string device, AttentionCase attentionCase, bool fused)
        where T : unmanaged
    {
        var dev = TestDevices.Get(device);
        var shape = attentionCase.Shape;
        var what = $"{(fused ? "fused" : "unfused")} {attentionCase.Name}";
        var random = TestData.NewRandom($"{typeof(T).Name} {what}");
        var data = Enumerable.Range(0, 4).Select(_ => TestData.Values<T>(random, shape.Elements)).ToArray();
        var tensors = data.Select(d => DeviceTensor<T>.FromSpan(dev, d.Values, shape.Batch, shape.Ctx, shape.Embedding)).ToArray();
        try
        {
            // Output and gradients come from the device's buffer cache: fill it with NaN so unwritten elements show.
            PoisonReusedBuffers<T>(dev, shape, count: 6);
            double[][] actual;
            using (var tape = new Tape())
            {
                using var output = attentionCase.Run(tensors[0], tensors[1], tensors[2], fused, tape);
                using var grads = tape.Backward(output, tensors[3]);
                actual = [Numeric.ToDouble<T>(output.ToArray()), .. tensors.Take(3).Select(t => Numeric.ToDouble<T>(grads.Of(t).ToArray()))];
            }

            var (mask, scale) = (attentionCase.ReferenceMask, attentionCase.Scale);
            var forward = DenseReference.Forward(data[0].Exact, data[1].Exact, data[2].Exact, shape, mask, scale);
            var (dq, dk, dv) = DenseReference.Backward(data[0].Exact, data[1].Exact, data[2].Exact, data[3].Exact, shape, mask, scale);
            var naive = NaiveAttention.Run<T>(data[0].Exact, data[1].Exact, data[2].Exact, data[3].Exact, shape, mask, scale);
            double[][] expected = [forward, dq, dk, dv], naiveResults = [naive.Output, naive.Dq, naive.Dk, naive.Dv];
            for (var i = 0; i < 4; i++)
            {
                var label = $"{what} {Names[i]}";
                var tolerance = Errors.Tolerance<T>(Errors.Relative(naiveResults[i], expected[i]), gradient: i > 0);
                Errors.AssertWithin(Errors.Relative(actual[i], expected[i]), tolerance, label);
                Errors.AssertElementwise<T>(actual[i], expected[i], naiveResults[i], label);
            }

            AssertZerosWhereNothingIsAllowed(attentionCase, actual, what);
            return actual;
        }
        finally
        {
            Array.ForEach(tensors, t => t.Dispose());
        }
    }

    /// <summary>Leaves <paramref name="count"/> NaN-filled buffers of the shape in the device's cache for the next allocations to take.</summary>
    public static void PoisonReusedBuffers<T>(ComputeDevice device, AttentionShape shape, int count)
        where T : unmanaged
    {
        var poisoned = Enumerable.Range(0, count).Select(_ => DeviceTensor<T>.Allocate(device, shape.Batch, shape.Ctx, shape.Embedding)).ToList();
        poisoned.ForEach(t => t.Fill(TestData.Poison<T>()));
        poisoned.ForEach(t => t.Dispose());
    }

    // docs/semantics.md §8: a query with no allowed key gives zeros (output and dq), never NaN; likewise dk and dv of a key no query sees.
    private static void AssertZerosWhereNothingIsAllowed(AttentionCase attentionCase, double[][] actual, string what)
    {
        var (shape, mask) = (attentionCase.Shape, attentionCase.ReferenceMask);
        var (emptyQueries, unseenKeys) = (0, 0);
        for (var h = 0; h < shape.Heads; h++)
        {
            for (var t = 0; t < shape.Ctx; t++)
            {
                var queryIsEmpty = !Enumerable.Range(0, shape.Ctx).Any(key => mask(h, t, key));
                var keyIsUnseen = !Enumerable.Range(0, shape.Ctx).Any(query => mask(h, query, t));
                emptyQueries += queryIsEmpty ? 1 : 0;
                unseenKeys += keyIsUnseen ? 1 : 0;
                for (var n = 0; n < shape.Batch; n++)
                {
                    for (var d = 0; d < shape.HeadDim; d++)
                    {
                        var index = shape.Index(n, t, h, d);
                        for (var i = 0; i < 4; i++)
                        {
                            var mustBeZero = i < 2 ? queryIsEmpty : keyIsUnseen;
                            if (mustBeZero && actual[i][index] != 0)
                            {
                                Assert.Fail($"{what} {Names[i]}: token {t} of head {h} has nothing to attend to (or nobody attends to it) but element {d} of sequence {n} is {actual[i][index]}, not 0");
                            }
                        }
                    }
                }
            }
        }

        Console.WriteLine($"{what}: {emptyQueries} (head, query) pairs with no key and {unseenKeys} (head, key) pairs no query sees, all exactly zero");
    }
}
