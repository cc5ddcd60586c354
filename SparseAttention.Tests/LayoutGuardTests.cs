using SparseAttention.Layouts;

namespace SparseAttention.Tests;

[TestClass]
public sealed class LayoutGuardTests
{
    [TestMethod]
    public void CtxNotAMultipleOfBlockSize()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.All(1000, 32, 4));
        Assert.AreEqual("ctx", ex.ParamName);
        StringAssert.Contains(ex.Message, "ctx 1000 is not a multiple of blockSize 32");
    }

    [TestMethod]
    [DataRow(8)]
    [DataRow(48)]
    [DataRow(256)]
    public void UnsupportedBlockSize(int blockSize)
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.All(1024, blockSize, 1));
        Assert.AreEqual("blockSize", ex.ParamName);
    }

    [TestMethod]
    public void LocalLengthNotAMultipleOfBlock()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Local(1024, 32, 1, 48));
        Assert.AreEqual("localCtx", ex.ParamName);
        StringAssert.Contains(ex.Message, "localCtx 48 is not a multiple of blockSize 32");
    }

    [TestMethod]
    public void StridedCtxNotAMultipleOfStride()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Strided(1024, 32, 1, 48));
        Assert.AreEqual("ctx", ex.ParamName);
    }

    [TestMethod]
    public void StridedTransposedLengthNotAMultipleOfBlock()
    {
        // ctx / stride = 16, not a multiple of block 32.
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Strided(1024, 32, 1, 64));
        Assert.AreEqual("ctx / stride", ex.ParamName);
    }

    [TestMethod]
    public void FixedHeadsNotAMultipleOfNumVerts()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Fixed(1024, 32, 3, 128, 2, 1));
        Assert.AreEqual("heads", ex.ParamName);
    }

    [TestMethod]
    public void FixedLengthNotAMultipleOfBlock()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Fixed(1024, 32, 4, 100, 1, 1));
        Assert.AreEqual("localCtx", ex.ParamName);
    }

    [TestMethod]
    public void FixedVertSizeLargerThanStride()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Fixed(1024, 32, 4, 128, 1, 8));
        Assert.AreEqual("vertSize", ex.ParamName);
    }

    [TestMethod]
    public void FixedStrideNotAMultipleOfVertSize()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Fixed(1024, 32, 4, 128, 1, 3));
        Assert.AreEqual("localCtx / blockSize", ex.ParamName);
    }

    [TestMethod]
    public void FixedTooManyVerts()
    {
        // stride 4, vertSize 2: only 2 rows of indices exist, so numVerts 4 would index past the list.
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Fixed(1024, 32, 4, 128, 4, 2));
        Assert.AreEqual("numVerts", ex.ParamName);
    }

    [TestMethod]
    public void CustomHeadsWithDifferentBlockCounts()
    {
        var a = new bool[,] { { true, false }, { true, true } };
        var b = new bool[,] { { true, false }, { false, true } };
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Custom([a, b], 16, 2));
        StringAssert.Contains(ex.Message, "every head must enable the same number of blocks");
    }

    [TestMethod]
    public void CustomNonSquareMatrix()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Custom(new bool[2, 3], 16, 1));
        Assert.AreEqual("blocksPerHead", ex.ParamName);
    }

    [TestMethod]
    public void CustomWrongNumberOfMatrices()
    {
        var m = new bool[,] { { true } };
        var ex = Assert.ThrowsExactly<ArgumentException>(() => BlockLayout.Custom([m, m], 16, 3));
        Assert.AreEqual("blocksPerHead", ex.ParamName);
    }

    [TestMethod]
    [DataRow(-1)]
    [DataRow(64)]
    public void AutoregressAtKeyOutOfRange(int key)
    {
        TokenMask mask = (_, _, _) => true;
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => mask.AutoregressAtKey(key, 64));
        Assert.AreEqual("autoregressAtKey", ex.ParamName);
    }

    [TestMethod]
    public void EmbeddingNotDividedByHeads()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => AttentionShape.FromEmbedding(1, 64, 100, 3));
        Assert.AreEqual("embedding", ex.ParamName);
    }
}
