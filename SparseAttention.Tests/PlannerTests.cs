using SparseAttention.Layouts;
using SparseAttention.Planning;

namespace SparseAttention.Tests;

[TestClass]
public sealed class PlannerTests
{
    [TestMethod]
    public void EmptyRowAndColumnLookupTablesMatchTheWorkedExample()
    {
        // Rows {0}, {}, {0, 2}: block row 1 and block column 1 are empty.
        var blocks = new bool[,] { { true, false, false }, { false, false, false }, { true, false, true } };
        var plan = BlockSparsePlan.For(BlockLayout.Custom(blocks, 16, 2));
        CollectionAssert.AreEqual(new[] { 0, 2, 2 }, plan.BlockRows.ToArray());
        CollectionAssert.AreEqual(new[] { 0, 0, 2 }, plan.BlockColumns.ToArray());
        CollectionAssert.AreEqual(new[] { 0, 1, 1, 3 }, plan.RowOffsets.ToArray());
        CollectionAssert.AreEqual(new[] { 0, 1, 2 }, plan.RowBlocks.ToArray());
        CollectionAssert.AreEqual(new[] { 0, 2, 2, 3 }, plan.ColumnOffsets.ToArray());
        CollectionAssert.AreEqual(new[] { 0, 1, 2 }, plan.ColumnBlocks.ToArray());
        CollectionAssert.AreEqual(new[] { 1, 1, 1 }, plan.BlockIsFull.ToArray(), "no predicate: whole blocks");
        Assert.IsTrue(plan.Masks.All(word => word == uint.MaxValue));
    }

    [TestMethod]
    public void PlanTablesCannotBeChangedAfterPlanning()
    {
        // Plans are shared by every call with the same layout (and cached by content): a write would corrupt them all.
        var plan = BlockSparsePlan.For(BlockLayout.Local(64, 16, 2, 32));
        IEnumerable<object> tables = [plan.BlockRows, plan.BlockColumns, plan.RowOffsets, plan.RowBlocks, plan.ColumnOffsets, plan.ColumnBlocks, plan.BlockIsFull];
        foreach (var table in tables.Cast<IList<int>>())
        {
            Assert.IsTrue(table.IsReadOnly);
            Assert.ThrowsExactly<NotSupportedException>(() => table[0] = 42);
        }

        Assert.ThrowsExactly<NotSupportedException>(() => ((IList<uint>)plan.Masks)[0] = 0);
    }

    [TestMethod]
    public void ColumnTableListsExactlyTheBlocksOfEachColumnInRowOrder()
    {
        var plan = BlockSparsePlan.For(BlockLayout.Fixed(512, 16, 4, 64, 2, 2));
        for (var lh = 0; lh < plan.LayoutHeads; lh++)
        {
            for (var j = 0; j < plan.BlockCount; j++)
            {
                var from = plan.ColumnOffsets[lh * (plan.BlockCount + 1) + j];
                var to = plan.ColumnOffsets[lh * (plan.BlockCount + 1) + j + 1];
                var listed = plan.ColumnBlocks.Skip(from).Take(to - from).ToArray();
                var expected = Enumerable.Range(0, plan.BlocksPerHead).Where(b => plan.BlockColumns[lh * plan.BlocksPerHead + b] == j).ToArray();
                CollectionAssert.AreEqual(expected, listed, $"head {lh} column {j}");
            }

            var rowEntries = Enumerable.Range(0, plan.BlockCount).SelectMany(i =>
                plan.RowBlocks.Skip(plan.RowOffsets[lh * (plan.BlockCount + 1) + i]).Take(plan.RowOffsets[lh * (plan.BlockCount + 1) + i + 1] - plan.RowOffsets[lh * (plan.BlockCount + 1) + i]));
            CollectionAssert.AreEqual(Enumerable.Range(0, plan.BlocksPerHead).ToArray(), rowEntries.ToArray(), "row-major numbering: the Hopper forward's RowWalk takes a row's LUT entry as its plan block number");
        }
    }

    [TestMethod]
    public void DiagonalBlockMaskIsCausalAndOffDiagonalIsFull()
    {
        var plan = BlockSparsePlan.For(BlockLayout.All(32, 16, 1));
        // Blocks: b0 = (0,0), b1 = (1,0), b2 = (1,1).
        CollectionAssert.AreEqual(new[] { 0, 1, 0 }, plan.BlockIsFull.ToArray());
        Assert.AreEqual(8, plan.WordsPerBlock);
        // Row r of a 16-wide diagonal block allows columns 0..r: bits r*16 .. r*16+r.
        for (var r = 0; r < 16; r++)
        {
            var word = plan.Masks[(r * 16) / 32];
            var rowBits = (word >> ((r * 16) % 32)) & 0xFFFF;
            Assert.AreEqual((1u << (r + 1)) - 1, rowBits, $"row {r}");
        }

        Assert.IsTrue(plan.Masks.Skip(8).Take(8).All(w => w == uint.MaxValue));
    }

    [TestMethod]
    public void PredicateBecomesBitMasksOfOnlyEnabledBlocks()
    {
        var blocks = new bool[,] { { false, true }, { true, false } };
        var plan = BlockSparsePlan.For(BlockLayout.Custom(blocks, 16, 1, (_, q, k) => (q ^ k) % 5 != 0));
        for (var b = 0; b < 2; b++)
        {
            for (var r = 0; r < 16; r++)
            {
                for (var c = 0; c < 16; c++)
                {
                    int q = plan.BlockRows[b] * 16 + r, k = plan.BlockColumns[b] * 16 + c;
                    Assert.AreEqual((q ^ k) % 5 != 0, plan.IsElementAllowed(0, b, r, c));
                }
            }
        }

        CollectionAssert.AreEqual(new[] { 0, 0 }, plan.BlockIsFull.ToArray());
    }

    [TestMethod]
    public void PlansAreCachedByContentNotByDelegate()
    {
        var blocks = new bool[,] { { true, true }, { false, true } };
        var first = BlockSparsePlan.For(BlockLayout.Custom(blocks, 16, 1, (_, q, k) => k <= q));
        var same = BlockSparsePlan.For(BlockLayout.Custom((bool[,])blocks.Clone(), 16, 1, (_, q, k) => !(k > q)));
        var different = BlockSparsePlan.For(BlockLayout.Custom(blocks, 16, 1, (_, q, k) => k < q));
        Assert.AreSame(first, same);
        Assert.AreNotSame(first, different);
    }

    [TestMethod]
    public void PerHeadPlanKeepsEachHeadsTables()
    {
        var a = new bool[,] { { true, false }, { true, false } };
        var b = new bool[,] { { false, true }, { false, true } };
        var plan = BlockSparsePlan.For(BlockLayout.Custom([a, b], 16, 2));
        Assert.AreEqual(2, plan.LayoutHeads);
        CollectionAssert.AreEqual(new[] { 0, 0, 1, 1 }, plan.BlockColumns.ToArray());
        CollectionAssert.AreEqual(new[] { 0, 2, 2, 2, 2, 4 }, plan.ColumnOffsets.ToArray());
        CollectionAssert.AreEqual(new[] { 0, 1, 0, 1 }, plan.ColumnBlocks.ToArray());
    }
}
