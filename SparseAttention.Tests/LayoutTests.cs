using SparseAttention.Layouts;

namespace SparseAttention.Tests;

[TestClass]
public sealed class LayoutTests
{
    // The original's example: ctx 1024, 4 heads, block 32 (issue 2's numbers, derived by hand in the comments).
    [TestMethod]
    [DataRow("all", 528, 2_099_200L)] // 32 * 33 / 2 blocks; 1024 * 1025 / 2 elements per head
    [DataRow("local", 63, 129_088L)] // diagonal + one sub-diagonal; per row min(q + 1, 32)
    [DataRow("strided", 32, 67_584L)] // chunks = 1: only diagonal blocks, 528 elements each
    [DataRow("fixed", 192, 722_944L)] // 80 band blocks + 112 summary blocks per head
    public void OriginalExampleCounts(string mode, int blocksPerHead, long allowedOverHeads)
    {
        var pattern = Pattern(mode);
        var layout = pattern.ToLayout(1024, 32, 4);
        Assert.AreEqual(blocksPerHead, layout.BlocksPerHead);
        Assert.AreEqual(allowedOverHeads, Enumerable.Range(0, 4).Sum(layout.AllowedElements));
    }

    [TestMethod]
    public void FixedWithFourVertsGivesEachHeadItsOwnSummaryColumn()
    {
        var layout = BlockLayout.Fixed(1024, 32, 4, 128, 4, 1);
        Assert.AreEqual(4, layout.LayoutHeads);
        // stride 4, indices [3, 2, 1, 0]: head h's summary column is 3 - h within each period of 4 blocks.
        for (var h = 0; h < 4; h++)
        {
            Assert.IsTrue(layout.IsBlockEnabled(h, 31, 3 - h), $"head {h}");
            for (var other = 0; other < 4; other++)
            {
                Assert.AreEqual(other == 3 - h, layout.IsBlockEnabled(h, 31, other), $"head {h} column {other}");
            }

            Assert.IsTrue(layout.IsBlockEnabled(h, 30, 29), "local band inside a period");
            Assert.IsFalse(layout.IsBlockEnabled(h, 29, 30), "causal");
        }
    }

    [TestMethod]
    public void FixedWithVertSizeTwoAndTwoVerts()
    {
        // L 128, block 32: stride 4, indices [3, 2, 1, 0] in rows of 2: head 0 -> {3, 2}, head 1 -> {1, 0}.
        var layout = BlockLayout.Fixed(256, 32, 2, 128, 2, 2);
        bool[] head0Row7 = [false, false, true, true, true, true, true, true];
        bool[] head1Row7 = [true, true, false, false, true, true, true, true];
        for (var j = 0; j < 8; j++)
        {
            Assert.AreEqual(head0Row7[j], layout.IsBlockEnabled(0, 7, j), $"head 0 column {j}");
            Assert.AreEqual(head1Row7[j], layout.IsBlockEnabled(1, 7, j), $"head 1 column {j}");
        }
    }

    [TestMethod]
    public void StridedWithTwoChunksEnablesTheBlockBelowTheDiagonalOnOddRows()
    {
        // ctx 256, stride 4: bT = 64, chunks = 64 / 16 / ... with block 16: chunks = 4. Row i covers j in [i - i % 4, i].
        var layout = BlockLayout.Strided(256, 16, 1, 4);
        for (var i = 0; i < 16; i++)
        {
            for (var j = 0; j < 16; j++)
            {
                Assert.AreEqual(j <= i && j >= i - i % 4, layout.IsBlockEnabled(0, i, j), $"({i}, {j})");
            }
        }
    }

    [TestMethod]
    public void LocalElementMaskIsTheBandAndDiagonalIsCausal()
    {
        var layout = BlockLayout.Local(128, 16, 1, 32);
        Assert.IsTrue(layout.IsAllowed(0, 40, 9));
        Assert.IsFalse(layout.IsAllowed(0, 40, 8), "q - k = 32 is outside a band of 32");
        Assert.IsFalse(layout.IsAllowed(0, 40, 41), "causal");
        Assert.IsTrue(layout.IsAllowed(0, 40, 40));
    }

    [TestMethod]
    public void CustomLayoutWithoutPredicateAllowsWholeBlocksBothWays()
    {
        var blocks = new bool[,] { { false, true }, { true, false } };
        var layout = BlockLayout.Custom(blocks, 16, 3);
        Assert.AreEqual(2, layout.BlocksPerHead);
        Assert.IsTrue(layout.IsAllowed(2, 0, 31), "no implicit causal mask");
        Assert.IsFalse(layout.IsAllowed(2, 0, 15));
        Assert.AreEqual(512, layout.AllowedElements(1));
    }

    [TestMethod]
    public void CustomLayoutPredicateRemovesElements()
    {
        var blocks = new bool[,] { { true, true }, { true, true } };
        var layout = BlockLayout.Custom(blocks, 16, 2, (h, q, k) => (q + k + h) % 3 != 0);
        var expected = 0L;
        for (var q = 0; q < 32; q++)
        {
            for (var k = 0; k < 32; k++)
            {
                expected += (q + k + 1) % 3 != 0 ? 1 : 0;
            }
        }

        Assert.AreEqual(expected, layout.AllowedElements(1));
    }

    internal static AttentionPattern Pattern(string mode) => mode switch
    {
        "all" => AttentionPattern.All,
        "local" => AttentionPattern.Local(32),
        "strided" => AttentionPattern.Strided(32),
        "fixed" => AttentionPattern.Fixed(128, 4, 1),
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };
}
