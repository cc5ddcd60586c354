using SparseAttention.Layouts;

namespace SparseAttention.Tests;

/// <summary>A pattern kind outside the enum's names is rejected, not silently run as another pattern.</summary>
[TestClass]
public sealed class PatternKindTests
{
    [TestMethod]
    public void UnknownKindIsRejectedByLayoutAndMask()
    {
        var pattern = new AttentionPattern((PatternKind)42, 64);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => pattern.ToLayout(256, 32, 2));
        Assert.AreEqual("Kind", ex.ParamName);
        StringAssert.Contains(ex.Message, "pattern kind 42 is not one of All, Local, Strided, Fixed");
        ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => pattern.ToTokenMask(256, 32, 2));
        Assert.AreEqual("Kind", ex.ParamName);
        Assert.AreEqual("kind 42", pattern.ToString(), "ToString still works, for logs and debuggers");
    }
}
