using System.Reflection;
using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Kernels.BlockSparse;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;
using SparseAttention.Kernels.Hopper;
using SparseAttention.Layouts;
using SparseAttention.Tensors;
using SparseAttention.Tests.Support;

namespace SparseAttention.Tests;

/// <summary>The loader's PTX stage: the text pass on PTX that ILGPU writes without a GPU, and the same bits on CUDA with and without it.</summary>
[TestClass]
public sealed class PtxStageTests
{
    [TestMethod]
    [DataRow(typeof(SddKernels), "TensorCoreKernel", new[] { typeof(Fp16) })]
    [DataRow(typeof(SoftmaxKernels), "ForwardPacked", new[] { typeof(Bf16) })]
    [DataRow(typeof(DsdKernels), "TensorCoreKernel", new[] { typeof(Fp16) })]
    public void PromoteDepotsLeavesNoLocalMemoryInIlgpuPtx(Type family, string name, Type[] arguments) =>
        AssertPromoted(family.GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)!.MakeGenericMethod(arguments), $"{family.Name}.{name}");

    [TestMethod]
    public void PromoteDepotsLeavesNoLocalMemoryInTheCpAsyncKernels()
    {
        AssertPromoted(FlashKernels.ForwardKernelFor<Fp16>(64, 64).Method, "FlashKernels.ForwardKernel (cp.async)");
        AssertPromoted(FlashKernels.QueryGradKernelFor<Bf16>(128, 32).Method, "FlashKernels.QueryGradKernel (cp.async)");
        AssertPromoted(FlashKernels.KeyValueGradKernelFor<Fp16>(64, 64).Method, "FlashKernels.KeyValueGradKernel (cp.async)");
    }

    private static void AssertPromoted(MethodInfo method, string name)
    {
        using var compiler = new OfflinePtxCompiler();
        var ilgpu = compiler.Compile(method);
        var promoted = PtxStages.PromoteDepots(ilgpu);
        var loaded = KernelLoader.Transform(ilgpu, KernelLoader.DefaultStages);

        // ILGPU gives each inline-asm operand a depot: if it ever stops, this stage has nothing left to do.
        var accesses = Count(ilgpu, "ld.local") + Count(ilgpu, "st.local");
        Console.WriteLine($"{name}: {Count(ilgpu, ".local .align")} depots, {accesses} loads and stores of them");
        Assert.IsGreaterThan(0, accesses, "ILGPU's PTX has local depots");
        Assert.AreEqual(0, Count(promoted, "__local_depot"), "every depot promoted");
        Assert.AreEqual(0, Count(loaded, ".local"), "no local memory left as loaded");
        Assert.AreEqual(Count(ilgpu, "mma.sync") + Count(ilgpu, "ex2.approx"), Count(promoted, "mma.sync") + Count(promoted, "ex2.approx"), "instructions kept");
        Assert.AreEqual(Count(ilgpu, "\tmov.") + accesses - Count(ilgpu, ", __local_depot"), Count(promoted, "\tmov."), "each load and store became a mov, each address move went");
        Assert.AreEqual(promoted, PtxStages.PromoteDepots(promoted), "a second pass changes nothing");
    }

    [TestMethod]
    public void TargetHopperRetargetsOnlyModulesWithWgmma()
    {
        using var compiler = new OfflinePtxCompiler();
        var kernels = new[]
        {
            (HopperKernels.ForwardKernelFor<Fp16>(64).Method, true), (HopperKernels.ForwardKernelFor<Bf16>(128).Method, true),
            (HopperKernels.QueryGradKernelFor<Fp16>(64).Method, true), (HopperKernels.KeyValueGradKernelFor<Bf16>(128).Method, true),
            (FlashKernels.ForwardKernelFor<Fp16>(64, 64).Method, false),
        };
        foreach (var (kernel, wgmma) in kernels)
        {
            var ilgpu = compiler.Compile(kernel);
            StringAssert.Contains(ilgpu, ".target sm_80", "ILGPU's own target");
            var loaded = KernelLoader.Transform(ilgpu, KernelLoader.DefaultStages);
            Assert.AreEqual(wgmma, loaded.Contains(".target sm_90a\n", StringComparison.Ordinal), $"{kernel.Name}: sm_90a where wgmma is used");
            Assert.AreEqual(!wgmma, loaded.Contains(".target sm_80\n", StringComparison.Ordinal), $"{kernel.Name}: sm_80 elsewhere");
            Assert.AreEqual(0, Count(loaded, ".local"), $"{kernel.Name}: no local memory left as loaded");
        }

        Assert.AreEqual(".version 8.0\n.target sm_80\n", PtxStages.TargetHopper(".version 8.0\n.target sm_80\n"), "a module without wgmma is left as it is");
    }

    [TestMethod]
    public void DropDeadCodeRemovesTheCpuTwinsFromTheFusedKernels()
    {
        using var compiler = new OfflinePtxCompiler();
        foreach (var kernel in new[] { FlashKernels.ForwardKernelFor<Fp16>(64, 64).Method, FlashKernels.QueryGradKernelFor<Bf16>(128, 32).Method, FlashKernels.KeyValueGradKernelFor<Fp16>(64, 64).Method })
        {
            var promoted = PtxStages.PromoteDepots(compiler.Compile(kernel));
            var dropped = PtxStages.DropDeadCode(promoted);
            Console.WriteLine($"{kernel.Name}: {Count(promoted, "\n")} lines, {Count(dropped, "\n")} after");

            // The tensor-core path is all live; the mma emulation (the only warp barriers) is all dead.
            Assert.IsGreaterThan(0, Count(promoted, "bar.warp.sync"), "ILGPU's PTX holds the emulation");
            Assert.AreEqual(0, Count(dropped, "bar.warp.sync"), "the emulation is gone");
            foreach (var instruction in new[] { "mma.sync", "ldmatrix", "cp.async", "ex2.approx.ftz", "bar.sync" })
            {
                Assert.AreEqual(Count(promoted, instruction), Count(dropped, instruction), $"every {instruction} kept");
            }

            Assert.AreEqual(dropped, PtxStages.DropDeadCode(dropped), "a second pass changes nothing");
        }
    }

    [TestMethod]
    public void DropDeadCodeFoldsConstantBranchesAndKeepsEveryReachedBlock()
    {
        const string ptx = """
            .visible .entry K(
            )
            {
            	.reg .pred %p<4>;
            	mov.pred	%p1, 1;
            	@%p1 bra.uni	L_live;
            	st.shared.b32	[%r9], %r1;
            	bar.warp.sync	-1;
            L_dead:
            	add.s32	%r2, %r2, 1;
            	bra.uni	L_dead;
            L_live:
            	setp.eq.s32	%p2, %r1, 0;
            	@%p2 bra	L_taken;
            	add.s32	%r3, %r3, 1;
            L_taken:
            	mov.pred	%p3, 0;
            	@%p3 bra.uni	L_dead;
            	ret;
            }
            """;
        var dropped = PtxStages.DropDeadCode(ptx);
        Console.WriteLine(dropped);
        StringAssert.Contains(dropped, "\tbra.uni\tL_live;", "a branch on a predicate set to 1 is taken");
        Assert.AreEqual(0, Count(dropped, "%p1") + Count(dropped, "%p3"), "constant predicates folded");
        Assert.AreEqual(0, Count(dropped, "bar.warp.sync") + Count(dropped, "st.shared") + Count(dropped, "L_dead"), "what no path reaches is gone");
        StringAssert.Contains(dropped, "@%p2 bra\tL_taken;", "a branch on a computed predicate stays");
        StringAssert.Contains(dropped, "add.s32\t%r3, %r3, 1;", "its fall-through stays");
        StringAssert.Contains(dropped, "L_taken:", "its target stays");
        StringAssert.Contains(dropped, "ret;", "a branch on a predicate set to 0 falls through");
        StringAssert.Contains(dropped, ".reg .pred %p<4>;", "declarations stay");
    }

    [TestMethod]
    public void DropDeadCodeLeavesModulesItCannotReadAlone()
    {
        const string unknownTarget = ".visible .entry K(\n)\n{\n\tbra.uni\tL_elsewhere;\n\tret;\n}";
        Assert.AreEqual(unknownTarget, PtxStages.DropDeadCode(unknownTarget));
        const string twoBodies = ".entry A(\n)\n{\n\tret;\n}\n.entry B(\n)\n{\n\tret;\n}";
        Assert.AreEqual(twoBodies, PtxStages.DropDeadCode(twoBodies));

        // A C# switch: ILGPU writes brx.idx over a .branchtargets list, whose cases follow unconditional branches.
        const string jumpTable = ".visible .entry K(\n)\n{\n\tbra.uni\tL_table;\nL_one:\n\tret;\nL_two:\n\tret;\nL_table:\n\t.branchtargets L_one, L_two;\n\tbrx.idx\t%r1, L_table;\n}";
        Assert.AreEqual(jumpTable, PtxStages.DropDeadCode(jumpTable));
        const string twoStatements = ".visible .entry K(\n)\n{\n\tadd.s32\t%r1, %r1, 1; @%p1 bra\tL_a;\n\tret;\nL_a:\n\tret;\n}";
        Assert.AreEqual(twoStatements, PtxStages.DropDeadCode(twoStatements));
    }

    [TestMethod]
    public void DepotsUsedOtherwiseStayInMemory()
    {
        const string ptx = """
            .visible .entry K(
            )
            {
            	.local .align 4 .b8 __local_depot0[4];
            	.local .align 4 .b8 __local_depot1[4];
            	.local .align 8 .b8 __local_depot2[8];
            	mov.b64	%rd1, __local_depot0;
            	mov.b64	%rd2, __local_depot1;
            	mov.b64	%rd3, __local_depot2;
            	st.local.f32	[%rd1], 0f3F800000;
            	ld.local.f32	%f1, [%rd1];
            	@%p1 st.local.b32	[%rd2], %r1;
            	ld.local.b32	%r2, [%rd2];
            	st.local.b64	[%rd3], %rd9;
            	ld.local.b32	%r3, [%rd3];
            }
            """;
        var loaded = PtxStages.PromoteDepots(ptx);
        Console.WriteLine(loaded);
        StringAssert.Contains(loaded, "mov.f32\t%depot32_0, 0f3F800000;");
        StringAssert.Contains(loaded, "mov.f32\t%f1, %depot32_0;");
        Assert.AreEqual(0, Count(loaded, "__local_depot0"), "the whole-access depot is promoted");
        StringAssert.Contains(loaded, "@%p1 st.local.b32\t[%rd2], %r1;", "a predicated store keeps its depot");
        StringAssert.Contains(loaded, "ld.local.b32\t%r3, [%rd3];", "a 4-byte load of an 8-byte depot keeps it");
        Assert.AreEqual(2, Count(loaded, ".local .align"));
    }

    [TestMethod]
    public void CudaKernelsGiveTheSameBitsWithAndWithoutTheStage()
    {
        var staged = TestDevices.Get(TestDevices.Cuda);
        using var plain = ComputeDevice.CreateCuda();
        KernelLoader.UseStages(plain.Accelerator, []);
        var shape = new AttentionShape(2, 256, 3, 64);
        var random = TestData.NewRandom("ptx stage");
        var inputs = Enumerable.Range(0, 4).Select(_ => TestData.Values<Half>(random, shape.Elements).Values).ToArray();
        foreach (var fused in new[] { true, false })
        {
            var options = new AttentionOptions { Fused = fused, AutoregressAtKey = 100 };
            var expected = Run(staged, shape, inputs, options);
            var actual = Run(plain, shape, inputs, options);
            for (var i = 0; i < expected.Length; i++)
            {
                CollectionAssert.AreEqual(expected[i], actual[i], $"{(fused ? "fused" : "unfused")} result {i} differs without the PTX stage");
            }
        }
    }

    private static Half[][] Run(ComputeDevice device, AttentionShape shape, Half[][] inputs, AttentionOptions options)
    {
        var tensors = inputs.Select(values => DeviceTensor<Half>.FromSpan(device, values, shape.Batch, shape.Ctx, shape.Embedding)).ToArray();
        try
        {
            using var tape = new Tape();
            using var output = BlockSparseAttention.Compute(tensors[0], tensors[1], tensors[2], shape.Heads, AttentionPattern.Local(64), 32, options, tape);
            using var grads = tape.Backward(output, tensors[3]);
            return [output.ToArray(), .. tensors.Take(3).Select(t => grads.Of(t).ToArray())];
        }
        finally
        {
            Array.ForEach(tensors, t => t.Dispose());
        }
    }

    private static int Count(string text, string what) => text.Split(what).Length - 1;
}
