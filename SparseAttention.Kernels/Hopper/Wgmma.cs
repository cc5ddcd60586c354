using ILGPU;
using ILGPU.Runtime.Cuda;
using SparseAttention.Kernels.Common;
using SparseAttention.Kernels.Fused;

namespace SparseAttention.Kernels.Hopper;

/// <summary>
/// Hopper's warpgroup matrix product, <c>wgmma.mma_async</c> m64n64k16 with fp32 accumulators (sm_90a: the loader's
/// <see cref="PtxStages.TargetHopper"/> stage retargets a module that uses it), and its CPU twin. The four warps of a
/// group are one warpgroup: warp w holds rows 16w..16w+15 of the 64 x 64 accumulator as four
/// <see cref="IAccumulator8"/> tiles of 16 columns, in the m16n8 layout the <c>mma.sync</c> kernels use, so masking
/// and the online softmax are theirs.
/// </summary>
/// <remarks>
/// Each chain of products is one inline-asm statement, from <c>wgmma.fence</c> to <c>wgmma.wait_group 0</c>: ILGPU
/// copies every operand into a register of its own before a statement and out after it, and such copies between two
/// <c>wgmma</c> of a pipeline stage made ptxas serialize them (C7513-C7519). The descriptors of later k-steps are added
/// inside the statement (in 16-byte units: a k-step is 32 bytes along a swizzled row, or 2048 bytes of 16 rows, and a
/// block of 64 features 8192 bytes). A statement takes at most 44 operands, so a register-A chain passes its 16 A
/// registers as 8 pairs.
/// </remarks>
internal static class Wgmma
{
    // The statements, built from constant pieces (C# joins them at compile time, and EmitRef needs one constant).
    // Operands: %0-%31 the accumulators; scores: %32 and %33 the descriptors of A and B at k-step 0. `p` (scale-d) is
    // set true by comparing a descriptor with itself, which spends no operand.
    private const string Accumulators = "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}";
    private const string MmaFp16 = " wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " + Accumulators;
    private const string MmaBf16 = " wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " + Accumulators;
    private const string Wait = " wgmma.commit_group.sync.aligned; wgmma.wait_group.sync.aligned 0; }";
    private const string ScoresStart4 = "{ .reg .pred p; .reg .b64 a1, b1, a2, b2, a3, b3; setp.eq.u64 p, %32, %32; add.s64 a1, %32, 2; add.s64 b1, %33, 2; add.s64 a2, %32, 4; add.s64 b2, %33, 4; add.s64 a3, %32, 6; add.s64 b3, %33, 6;";
    private const string ScoresStart8 = "{ .reg .pred p; .reg .b64 a1, b1, a2, b2, a3, b3, a4, b4, a5, b5, a6, b6, a7, b7; setp.eq.u64 p, %32, %32; add.s64 a1, %32, 2; add.s64 b1, %33, 2; add.s64 a2, %32, 4; add.s64 b2, %33, 4; add.s64 a3, %32, 6; add.s64 b3, %33, 6; add.s64 a4, %32, 512; add.s64 b4, %33, 512; add.s64 a5, %32, 514; add.s64 b5, %33, 514; add.s64 a6, %32, 516; add.s64 b6, %33, 516; add.s64 a7, %32, 518; add.s64 b7, %33, 518;";
    private const string Fence = " wgmma.fence.sync.aligned;";
    private const string Step0 = ", %32, %33, p, 1, 1, 0, 0;";
    private const string Step1 = ", a1, b1, p, 1, 1, 0, 0;";
    private const string Step2 = ", a2, b2, p, 1, 1, 0, 0;";
    private const string Step3 = ", a3, b3, p, 1, 1, 0, 0;";
    private const string Step4 = ", a4, b4, p, 1, 1, 0, 0;";
    private const string Step5 = ", a5, b5, p, 1, 1, 0, 0;";
    private const string Step6 = ", a6, b6, p, 1, 1, 0, 0;";
    private const string Step7 = ", a7, b7, p, 1, 1, 0, 0;";
    private const string ScoresFp16x4 = ScoresStart4 + Fence + MmaFp16 + Step0 + MmaFp16 + Step1 + MmaFp16 + Step2 + MmaFp16 + Step3 + Wait;
    private const string ScoresBf16x4 = ScoresStart4 + Fence + MmaBf16 + Step0 + MmaBf16 + Step1 + MmaBf16 + Step2 + MmaBf16 + Step3 + Wait;
    private const string ScoresFp16x8 = ScoresStart8 + Fence + MmaFp16 + Step0 + MmaFp16 + Step1 + MmaFp16 + Step2 + MmaFp16 + Step3 + MmaFp16 + Step4 + MmaFp16 + Step5 + MmaFp16 + Step6 + MmaFp16 + Step7 + Wait;
    private const string ScoresBf16x8 = ScoresStart8 + Fence + MmaBf16 + Step0 + MmaBf16 + Step1 + MmaBf16 + Step2 + MmaBf16 + Step3 + MmaBf16 + Step4 + MmaBf16 + Step5 + MmaBf16 + Step6 + MmaBf16 + Step7 + Wait;
    // The register-A statements (P . V): %32-%39 the A operands of four k-steps as pairs of registers, unpacked inside; %40 B's
    // descriptor at the first k-step; %41 and %42 the factors of rows g and g+8, which rescale the accumulators inside the
    // statement, so that the output's registers go in and come out unchanged in name and ptxas keeps them in place.
    // A product without the rescaling (the backward's dV, dK and dQ) leaves out the multiplications.
    private const string OperandsStart = "{ .reg .pred p; .reg .b64 b1, b2, b3; .reg .b32 q<16>; setp.eq.u64 p, %40, %40; add.s64 b1, %40, 128; add.s64 b2, %40, 256; add.s64 b3, %40, 384;"
        + " mov.b64 {q0,q1}, %32; mov.b64 {q2,q3}, %33; mov.b64 {q4,q5}, %34; mov.b64 {q6,q7}, %35; mov.b64 {q8,q9}, %36; mov.b64 {q10,q11}, %37; mov.b64 {q12,q13}, %38; mov.b64 {q14,q15}, %39;";
    private const string ValuesStart = OperandsStart
        + " mul.f32 %0, %0, %41; mul.f32 %1, %1, %41; mul.f32 %2, %2, %42; mul.f32 %3, %3, %42; mul.f32 %4, %4, %41; mul.f32 %5, %5, %41; mul.f32 %6, %6, %42; mul.f32 %7, %7, %42;"
        + " mul.f32 %8, %8, %41; mul.f32 %9, %9, %41; mul.f32 %10, %10, %42; mul.f32 %11, %11, %42; mul.f32 %12, %12, %41; mul.f32 %13, %13, %41; mul.f32 %14, %14, %42; mul.f32 %15, %15, %42;"
        + " mul.f32 %16, %16, %41; mul.f32 %17, %17, %41; mul.f32 %18, %18, %42; mul.f32 %19, %19, %42; mul.f32 %20, %20, %41; mul.f32 %21, %21, %41; mul.f32 %22, %22, %42; mul.f32 %23, %23, %42;"
        + " mul.f32 %24, %24, %41; mul.f32 %25, %25, %41; mul.f32 %26, %26, %42; mul.f32 %27, %27, %42; mul.f32 %28, %28, %41; mul.f32 %29, %29, %41; mul.f32 %30, %30, %42; mul.f32 %31, %31, %42;"
        + Fence;
    private const string ValuesStep0 = ", {q0,q1,q2,q3}, %40, p, 1, 1, 1;";
    private const string ValuesStep1 = ", {q4,q5,q6,q7}, b1, p, 1, 1, 1;";
    private const string ValuesStep2 = ", {q8,q9,q10,q11}, b2, p, 1, 1, 1;";
    private const string ValuesStep3 = ", {q12,q13,q14,q15}, b3, p, 1, 1, 1;";
    private const string ValuesFp16 = ValuesStart + MmaFp16 + ValuesStep0 + MmaFp16 + ValuesStep1 + MmaFp16 + ValuesStep2 + MmaFp16 + ValuesStep3 + Wait;
    private const string ValuesBf16 = ValuesStart + MmaBf16 + ValuesStep0 + MmaBf16 + ValuesStep1 + MmaBf16 + ValuesStep2 + MmaBf16 + ValuesStep3 + Wait;
    private const string ProductsFp16 = OperandsStart + Fence + MmaFp16 + ValuesStep0 + MmaFp16 + ValuesStep1 + MmaFp16 + ValuesStep2 + MmaFp16 + ValuesStep3 + Wait;
    private const string ProductsBf16 = OperandsStart + Fence + MmaBf16 + ValuesStep0 + MmaBf16 + ValuesStep1 + MmaBf16 + ValuesStep2 + MmaBf16 + ValuesStep3 + Wait;

    /// <summary>
    /// Makes this thread's finished <c>cp.async</c> copies visible to <c>wgmma</c>, which reads shared memory through
    /// the async proxy; call it after <see cref="AsyncCopy.WaitAll"/> and before the group barrier.
    /// </summary>
    public static void ProxyFence()
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("fence.proxy.async.shared::cta;");
        }
    }

    /// <summary>
    /// Adds A . Bᵀ to the accumulator tiles <paramref name="t0"/>..<paramref name="t3"/>: A is the 64 rows of
    /// <paramref name="a"/> and B the 64 rows of <paramref name="b"/>, over their <paramref name="features"/> (64 or 128)
    /// features (S = Q . Kᵀ). Every thread of the group calls it; the product is complete when it returns.
    /// </summary>
    public static void SharedShared<TElement, TTile>(ref TTile t0, ref TTile t1, ref TTile t2, ref TTile t3, in CoreTile a, in CoreTile b, int features)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TTile : struct, IAccumulator8
    {
        if (!CudaAsm.IsSupported)
        {
            var lane = new WarpLane();
            for (var kStep = 0; kStep < features >> 4; kStep++)
            {
                TwinSharedShared<TElement, TTile>(ref t0, a, b, kStep, lane, 0);
                TwinSharedShared<TElement, TTile>(ref t1, a, b, kStep, lane, 16);
                TwinSharedShared<TElement, TTile>(ref t2, a, b, kStep, lane, 32);
                TwinSharedShared<TElement, TTile>(ref t3, a, b, kStep, lane, 48);
            }

            return;
        }

        Chain<TElement, TTile>(ref t0, ref t1, ref t2, ref t3, features == 64 ? Statement.Scores4 : Statement.Scores8, a.RowMajor(), b.RowMajor(), default, 1f, 1f);
    }

    /// <summary>
    /// Scales the accumulator tiles' rows g by <paramref name="low"/> and g+8 by <paramref name="high"/> (when
    /// <paramref name="rescale"/>), then adds A . B over 64 tokens: A the 64 x 64 operands in registers (each warp's 16
    /// rows as the <c>mma.sync</c> A fragments of four k-steps, <paramref name="a"/>), B the 64 staged rows of
    /// <paramref name="b"/> by its features <paramref name="feature"/>..+63 (O = alpha O + P . V; dV += Pᵀ . dO). Every
    /// thread calls it; the product is complete when it returns.
    /// </summary>
    public static void RegisterShared<TElement, TTile>(ref TTile t0, ref TTile t1, ref TTile t2, ref TTile t3, in ValueOperands a, bool rescale, float low, float high, in CoreTile b, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TTile : struct, IAccumulator8
    {
        if (!CudaAsm.IsSupported)
        {
            if (rescale)
            {
                TwinScale(ref t0, low, high);
                TwinScale(ref t1, low, high);
                TwinScale(ref t2, low, high);
                TwinScale(ref t3, low, high);
            }

            for (var kStep = 0; kStep < 4; kStep++)
            {
                a.Fragments(kStep, out var a0, out var a1, out var a2, out var a3);
                TwinRegisterShared<TElement, TTile>(ref t0, ref t1, ref t2, ref t3, a0, a1, a2, a3, b, kStep, feature);
            }

            return;
        }

        Chain<TElement, TTile>(ref t0, ref t1, ref t2, ref t3, rescale ? Statement.Values : Statement.Products, 0ul, b.ColumnMajor(feature), a, low, high);
    }

    // Which statement a chain runs.
    private enum Statement
    {
        Scores4,
        Scores8,
        Values,
        Products,
    }

    // One chain as one statement over the four tiles' 32 accumulators (a constant `statement` folds the branches away):
    // the S chains read descriptors `first` (A) and `second` (B), the register-A chains the A operands `values`,
    // descriptor `second` and (rescaling) the row factors `low` and `high`.
    private static void Chain<TElement, TTile>(ref TTile t0, ref TTile t1, ref TTile t2, ref TTile t3, Statement statement, ulong first, ulong second, in ValueOperands values, float low, float high)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TTile : struct, IAccumulator8
    {
        t0.Get(out var x0, out var x1, out var x2, out var x3, out var x4, out var x5, out var x6, out var x7);
        t1.Get(out var x8, out var x9, out var x10, out var x11, out var x12, out var x13, out var x14, out var x15);
        t2.Get(out var x16, out var x17, out var x18, out var x19, out var x20, out var x21, out var x22, out var x23);
        t3.Get(out var x24, out var x25, out var x26, out var x27, out var x28, out var x29, out var x30, out var x31);
        Ref<float> d0 = x0, d1 = x1, d2 = x2, d3 = x3, d4 = x4, d5 = x5, d6 = x6, d7 = x7, d8 = x8, d9 = x9, d10 = x10, d11 = x11, d12 = x12, d13 = x13, d14 = x14, d15 = x15, d16 = x16, d17 = x17, d18 = x18, d19 = x19, d20 = x20, d21 = x21, d22 = x22, d23 = x23, d24 = x24, d25 = x25, d26 = x26, d27 = x27, d28 = x28, d29 = x29, d30 = x30, d31 = x31;
        Input<ulong> descA = first, descB = second;
        var bf16 = default(TElement).IsBFloat16;
        if (statement is Statement.Values or Statement.Products)
        {
            Input<ulong> x32 = values.P0, x33 = values.P1, x34 = values.P2, x35 = values.P3, x36 = values.P4, x37 = values.P5, x38 = values.P6, x39 = values.P7;
            Input<float> x41 = low, x42 = high;
            if (statement == Statement.Products && bf16)
            {
                CudaAsm.EmitRef(ProductsBf16, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref x32, ref x33, ref x34, ref x35, ref x36, ref x37, ref x38, ref x39, ref descB);
            }
            else if (statement == Statement.Products)
            {
                CudaAsm.EmitRef(ProductsFp16, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref x32, ref x33, ref x34, ref x35, ref x36, ref x37, ref x38, ref x39, ref descB);
            }
            else if (bf16)
            {
                CudaAsm.EmitRef(ValuesBf16, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref x32, ref x33, ref x34, ref x35, ref x36, ref x37, ref x38, ref x39, ref descB, ref x41, ref x42);
            }
            else
            {
                CudaAsm.EmitRef(ValuesFp16, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref x32, ref x33, ref x34, ref x35, ref x36, ref x37, ref x38, ref x39, ref descB, ref x41, ref x42);
            }
        }
        else if (statement == Statement.Scores4)
        {
            if (bf16)
            {
                CudaAsm.EmitRef(ScoresBf16x4, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref descA, ref descB);
            }
            else
            {
                CudaAsm.EmitRef(ScoresFp16x4, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref descA, ref descB);
            }
        }
        else if (bf16)
        {
            CudaAsm.EmitRef(ScoresBf16x8, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref descA, ref descB);
        }
        else
        {
            CudaAsm.EmitRef(ScoresFp16x8, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref descA, ref descB);
        }

        t0.Set(d0.Value, d1.Value, d2.Value, d3.Value, d4.Value, d5.Value, d6.Value, d7.Value);
        t1.Set(d8.Value, d9.Value, d10.Value, d11.Value, d12.Value, d13.Value, d14.Value, d15.Value);
        t2.Set(d16.Value, d17.Value, d18.Value, d19.Value, d20.Value, d21.Value, d22.Value, d23.Value);
        t3.Set(d24.Value, d25.Value, d26.Value, d27.Value, d28.Value, d29.Value, d30.Value, d31.Value);
    }

    // The CPU twin for one 16-column tile: each of its eight accumulators is a 16-term dot product of a row of A and a
    // row of B, read from shared memory (the group barrier before the product made them visible).
    private static void TwinSharedShared<TElement, TTile>(ref TTile tile, in CoreTile a, in CoreTile b, int kStep, in WarpLane lane, int column)
        where TElement : struct, IElement<ushort>
        where TTile : struct, IAccumulator8
    {
        tile.Get(out var c0, out var c1, out var c2, out var c3, out var c4, out var c5, out var c6, out var c7);
        int low = lane.Row, high = low + 8, even = column + 2 * lane.T, feature = 16 * kStep;
        tile.Set(
            c0 + Dot<TElement>(a, low, b, even, feature),
            c1 + Dot<TElement>(a, low, b, even + 1, feature),
            c2 + Dot<TElement>(a, high, b, even, feature),
            c3 + Dot<TElement>(a, high, b, even + 1, feature),
            c4 + Dot<TElement>(a, low, b, even + 8, feature),
            c5 + Dot<TElement>(a, low, b, even + 9, feature),
            c6 + Dot<TElement>(a, high, b, even + 8, feature),
            c7 + Dot<TElement>(a, high, b, even + 9, feature));
    }

    // The CPU twin of the P . V statement's rescaling: rows g by `low`, g+8 by `high`.
    private static void TwinScale<TTile>(ref TTile tile, float low, float high)
        where TTile : struct, IAccumulator8
    {
        tile.Get(out var c0, out var c1, out var c2, out var c3, out var c4, out var c5, out var c6, out var c7);
        tile.Set(c0 * low, c1 * low, c2 * high, c3 * high, c4 * low, c5 * low, c6 * high, c7 * high);
    }

    // The CPU twin of one register-A k-step over the four tiles.
    private static void TwinRegisterShared<TElement, TTile>(ref TTile t0, ref TTile t1, ref TTile t2, ref TTile t3, uint a0, uint a1, uint a2, uint a3, in CoreTile b, int kStep, int feature)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TTile : struct, IAccumulator8
    {
        var lane = new WarpLane();
        TwinRegisterTile<TElement, TTile>(ref t0, a0, a1, a2, a3, b, kStep, feature, lane);
        TwinRegisterTile<TElement, TTile>(ref t1, a0, a1, a2, a3, b, kStep, feature + 16, lane);
        TwinRegisterTile<TElement, TTile>(ref t2, a0, a1, a2, a3, b, kStep, feature + 32, lane);
        TwinRegisterTile<TElement, TTile>(ref t3, a0, a1, a2, a3, b, kStep, feature + 48, lane);
    }

    // One 16-column tile of A (registers) . B: two mma.sync emulations, the B fragments read from the tile (lane (g, t)
    // holds B[2t, 2t+1][g] and B[2t+8, 2t+9][g] of each 8-column half).
    private static void TwinRegisterTile<TElement, TTile>(ref TTile tile, uint a0, uint a1, uint a2, uint a3, in CoreTile b, int kStep, int feature, in WarpLane lane)
        where TElement : struct, IElement<ushort>, IMmaElement
        where TTile : struct, IAccumulator8
    {
        tile.Get(out var c0, out var c1, out var c2, out var c3, out var c4, out var c5, out var c6, out var c7);
        Ref<float> d0 = c0, d1 = c1, d2 = c2, d3 = c3, d4 = c4, d5 = c5, d6 = c6, d7 = c7;
        int key = 16 * kStep + 2 * lane.T, column = feature + lane.G;
        MmaEmulation.Run<TElement>(ref d0, ref d1, ref d2, ref d3, a0, a1, a2, a3, Pair(b, key, column), Pair(b, key + 8, column));
        MmaEmulation.Run<TElement>(ref d4, ref d5, ref d6, ref d7, a0, a1, a2, a3, Pair(b, key, column + 8), Pair(b, key + 8, column + 8));
        tile.Set(d0.Value, d1.Value, d2.Value, d3.Value, d4.Value, d5.Value, d6.Value, d7.Value);
    }

    // Elements (row, feature) and (row + 1, feature), packed as a B fragment register.
    private static uint Pair(in CoreTile tile, int row, int feature) => TensorCore.Pack(tile.Element(row, feature), tile.Element(row + 1, feature));

    // Sum over the 16 features from `feature` of a[row] * b[column], in fp32.
    private static float Dot<TElement>(in CoreTile a, int row, in CoreTile b, int column, int feature)
        where TElement : struct, IElement<ushort>
    {
        var element = default(TElement);
        var sum = 0f;
        for (var k = feature; k < feature + 16; k++)
        {
            sum += element.ToFloat(a.Element(row, k)) * element.ToFloat(b.Element(column, k));
        }

        return sum;
    }

    // A lane's place in the warpgroup's accumulator: its row g of warp w's 16 (and g + 8), its column pair 2t.
    private readonly struct WarpLane
    {
        public WarpLane()
        {
            var lane = Warp.LaneIdx;
            G = lane >> 2;
            T = lane & 3;
            Row = 16 * (Group.IdxX >> 5) + G;
        }

        public int G { get; }

        public int T { get; }

        public int Row { get; }
    }
}
