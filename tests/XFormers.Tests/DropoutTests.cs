using XFormers.Hopper;
using XFormers.Kernels;
using XFormers.Reference;

namespace XFormers.Tests;

/// <summary>Dropout variants the stock table does not hold: packed sequences with GQA, and a score mod.</summary>
public static partial class DropoutVariants
{
    [Attention(Mask = MaskKind.BlockDiagonalCausal, HeadDim = 32, DType = DType.Float32, Dropout = true)]
    public static partial AttentionKernel PackedCausalF32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, HeadDim = 32, DType = DType.Float16, Dropout = true)]
    public static partial AttentionKernel PackedCausalF16();

    [Attention(HeadDim = 32, DType = DType.Float32, ScoreMod = nameof(Softcap), Dropout = true)]
    public static partial AttentionKernel SoftcapF32();

    public const float Cap = 3f;

    static float Softcap(float score, int batch, int head, int q, int kv) => Cap * MathF.Tanh(score / Cap);
}

/// <summary>What the dropout tests share: the mask the kernels drew, read back through the output.</summary>
public static class DropoutCheck
{
    /// <summary>
    /// The kernels' dropout factors for every visible score (b, h, i, j) of a case with Mkv ≤ HeadDim, read through the
    /// output: with Q = 0 every visible score of a row is 0, so P_ij = 1 / (the row's visible keys), and with V = I (key j
    /// holds the unit vector e_j) O_i,j = P_ij · factor_ij. Returns factor_ij = O_i,j · visible(i), [B, Mq, Hq, HeadDim]
    /// (0 past Mkv and for hidden scores).
    /// </summary>
    public static double[] Factors<T>(XFormersContext context, AttentionKernel kernel, AttentionCase c, double p, ulong seed)
        where T : unmanaged
    {
        c.Mkv.ShouldBeLessThanOrEqualTo(c.HeadDim);
        using var q = Tensor<T>.Zeros(context, c.Batch, c.Mq, c.Hq, c.HeadDim);
        using var k = Tensor<T>.RandomNormal(context, 1, 1f, c.Batch, c.Mkv, c.Hkv, c.HeadDim);
        var identity = new float[c.Batch * c.Mkv * c.Hkv * c.HeadDim];
        for (int b = 0; b < c.Batch; b++)
            for (int j = 0; j < c.Mkv; j++)
                for (int hk = 0; hk < c.Hkv; hk++)
                    identity[((b * c.Mkv + j) * c.Hkv + hk) * c.HeadDim + j] = 1f;
        using var v = Tensor<T>.FromFloats(context, identity, c.Batch, c.Mkv, c.Hkv, c.HeadDim);
        var attnBias = c.MaskBias();
        using var forward = kernel.Forward(q, k, v, attnBias, p: p, seed: seed);
        var o = forward.Output.ToDoubleArray();
        var problem = ReferenceAttention.ProblemFor(q, k, attnBias);
        for (int b = 0; b < c.Batch; b++)
            for (int h = 0; h < c.Hq; h++)
                for (int i = 0; i < c.Mq; i++)
                {
                    int visible = Enumerable.Range(0, c.Mkv).Count(j => ReferenceAttention.Visible(problem, b, h, i, j));
                    for (int j = 0; j < c.HeadDim; j++)
                        o[((b * c.Mq + i) * c.Hq + h) * c.HeadDim + j] *= visible;
                }
        return o;
    }

    /// <summary>
    /// Checks <see cref="Factors"/> against the oracle's mask score by score: a dropped score's factor is exactly 0, a kept
    /// one's 1 / (1 − p) (to <paramref name="tolerance"/>: the output's rounding). Returns the kept and the visible counts.
    /// </summary>
    public static (long Kept, long Visible) ShouldMatchTheOracle(double[] factors, AttentionCase c, XFormersContext context, double p, ulong seed, double tolerance)
    {
        using var q = Tensor<float>.Zeros(context, c.Batch, c.Mq, c.Hq, c.HeadDim);
        using var k = Tensor<float>.Zeros(context, c.Batch, c.Mkv, c.Hkv, c.HeadDim);
        var problem = ReferenceAttention.ProblemFor(q, k, c.MaskBias());
        long kept = 0, visible = 0;
        for (int b = 0; b < c.Batch; b++)
            for (int h = 0; h < c.Hq; h++)
                for (int i = 0; i < c.Mq; i++)
                    for (int j = 0; j < c.Mkv; j++)
                    {
                        if (!ReferenceAttention.Visible(problem, b, h, i, j))
                            continue;
                        visible++;
                        double factor = factors[((b * c.Mq + i) * c.Hq + h) * c.HeadDim + j];
                        if (DropoutReference.Keep(seed, p, b, h, i, j))
                        {
                            kept++;
                            factor.ShouldBe(1 / (1 - p), tolerance, $"kept score (b {b}, h {h}, i {i}, j {j})");
                        }
                        else
                        {
                            factor.ShouldBe(0.0, $"dropped score (b {b}, h {h}, i {i}, j {j})");
                        }
                    }
        return (kept, visible);
    }

    /// <summary>
    /// The keep rate and the mean factor of <paramref name="visible"/> independent scores, each kept with probability 1 − p:
    /// the kept count is Binomial(n, 1 − p), so its rate lies within 5 σ = 5 √(p (1 − p) / n) of 1 − p, and the mean
    /// factor (kept / n) / (1 − p) within 5 σ / (1 − p) of 1 (a miss by chance has probability 6 · 10^-7).
    /// </summary>
    public static void ShouldKeepOneMinusP(long kept, long visible, double p)
    {
        double rate = (double)kept / visible, sigma = Math.Sqrt(p * (1 - p) / visible);
        rate.ShouldBe(1 - p, 5 * sigma, $"keep rate of {visible} scores at p = {p}");
        (rate / (1 - p)).ShouldBe(1, 5 * sigma / (1 - p), $"mean factor (1/(1 − p) scaling) of {visible} scores at p = {p}");
    }

    /// <summary>Every output of a forward and backward, as floats, for bit-for-bit comparisons.</summary>
    public static float[][] Run<T>(XFormersContext context, AttentionKernel kernel, AttentionCase c, double p, ulong seed)
        where T : unmanaged
    {
        using var q = Tensor<T>.RandomNormal(context, c.Seed, 1f, c.Batch, c.Mq, c.Hq, c.HeadDim);
        using var k = Tensor<T>.RandomNormal(context, c.Seed + 1, 1f, c.Batch, c.Mkv, c.Hkv, c.HeadDim);
        using var v = Tensor<T>.RandomNormal(context, c.Seed + 2, 1f, c.Batch, c.Mkv, c.Hkv, c.HeadDim);
        using var dO = Tensor<T>.RandomNormal(context, c.Seed + 3, 1f, c.Batch, c.Mq, c.Hq, c.HeadDim);
        var attnBias = c.MaskBias();
        using var forward = kernel.Forward(q, k, v, attnBias, p: p, seed: seed);
        using var grads = kernel.Backward(dO, forward, q, k, v, attnBias, p: p, seed: seed);
        return new[] { forward.Output.ToFloatArray(), forward.Lse.ToFloatArray(), grads.Query.ToFloatArray(), grads.Key.ToFloatArray(), grads.Value.ToFloatArray() };
    }

    public static void ShouldBeBitwiseEqual(float[][] a, float[][] b)
    {
        a.Length.ShouldBe(b.Length);
        for (int n = 0; n < a.Length; n++)
        {
            a[n].Length.ShouldBe(b[n].Length);
            int first = Enumerable.Range(0, a[n].Length).FirstOrDefault(e => BitConverter.SingleToInt32Bits(a[n][e]) != BitConverter.SingleToInt32Bits(b[n][e]), -1);
            first.ShouldBe(-1, $"output {n} (O, Lse, dQ, dK, dV) differs first at element {first}");
        }
    }
}

/// <summary>
/// Attention dropout in the SIMT kernels on the CPU (docs/KERNEL-FEATURES.md, "Dropout"): the mask the kernels draw is the
/// oracle's score by score, keeps 1 − p of the scores and scales them by 1 / (1 − p); forward and gradients match
/// <see cref="DropoutReference"/> in fp64 given the same mask; the same seed gives the same bits; p = 0 is attention
/// without dropout; and the API refuses what it cannot run.
/// </summary>
[Collection(CpuCollection.Name)]
public class DropoutTests(CpuContextFixture fixture)
{
    private XFormersContext Context => fixture.Context;

    private static AttentionKernel Stock(string name) =>
        AttentionRegistry.Variants.Single(k => k.Variant.Name == "XFormers.StockVariants." + name);

    [Theory]
    [InlineData(0.1, 5ul)]
    [InlineData(0.5, 0xDEADBEEF_12345678ul)]
    public void TheMaskIsTheOraclesAndKeepsOneMinusPScaledByItsInverse(double p, ulong seed)
    {
        // 2 · 4 · 300 · 64 = 153600 scores; GQA 4 → 2 (the mask follows the query head).
        var c = new AttentionCase(2, 300, 64, 4, 2, 64);
        var factors = DropoutCheck.Factors<float>(Context, Stock("None_None_F32_64_Dropout"), c, p, seed);
        var (kept, visible) = DropoutCheck.ShouldMatchTheOracle(factors, c, Context, p, seed, 1e-6);
        visible.ShouldBe(153600);
        DropoutCheck.ShouldKeepOneMinusP(kept, visible, p);
    }

    [Fact]
    public void PackedSequencesDrawAtTheirPlaceInThePackedTensor()
    {
        // Rows and keys are counted in the packed tensor (b = 0), segments of odd lengths, an empty one, GQA 4 → 2.
        var c = AttentionCase.Packed(new[] { 5, 0, 20, 7 }, new[] { 3, 9, 11, 9 }, 4, 2, 32, MaskKind.BlockDiagonalCausal);
        var factors = DropoutCheck.Factors<float>(Context, DropoutVariants.PackedCausalF32(), c, 0.3, 77);
        DropoutCheck.ShouldMatchTheOracle(factors, c, Context, 0.3, 77, 1e-6).Kept.ShouldBeGreaterThan(0);
    }

    public static TheoryData<string, AttentionCase, double> OracleCases => new()
    {
        { "None_None_F32_64_Dropout", new AttentionCase(2, 37, 45, 2, 2, 64), 0.2 },
        // Mq > Mkv with GQA 4 → 2; the causal rows that see few keys keep few.
        { "Causal_None_F32_128_Dropout", new AttentionCase(1, 40, 33, 4, 2, 128, MaskKind.Causal, Seed: 5), 0.5 },
        { nameof(DropoutVariants.PackedCausalF32), AttentionCase.Packed(new[] { 3, 20, 1, 9 }, new[] { 5, 0, 9, 12 }, 4, 2, 32, MaskKind.BlockDiagonalCausal, seed: 7), 0.3 },
    };

    [Theory]
    [MemberData(nameof(OracleCases))]
    public void ForwardAndGradientsMatchTheFp64OracleWithTheSameMask(string name, AttentionCase c, double p)
    {
        var kernel = name == nameof(DropoutVariants.PackedCausalF32) ? DropoutVariants.PackedCausalF32() : Stock(name);
        var errors = AttentionCheck.Run<float>(Context, c, kernel: kernel, dropoutP: p, dropoutSeed: 42);
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float32), $"{name} {c}: {errors}");
    }

    [Fact]
    public void AScoreModTakesDropoutAfterIt()
    {
        var errors = AttentionCheck.Run<float>(Context, new AttentionCase(1, 40, 40, 2, 2, 32, Seed: 3), kernel: DropoutVariants.SoftcapF32(),
            scoreMod: (s, b, h, q, kv) => DropoutVariants.Cap * Math.Tanh(s / DropoutVariants.Cap), dropoutP: 0.25, dropoutSeed: 9);
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float32), errors.ToString());
    }

    [Fact]
    public void TheSameSeedGivesTheSameBitsAndAnotherSeedAnotherMask()
    {
        var kernel = Stock("Causal_None_F32_64_Dropout");
        var c = new AttentionCase(1, 45, 45, 2, 1, 64, MaskKind.Causal);
        var first = DropoutCheck.Run<float>(Context, kernel, c, 0.3, 1234);
        DropoutCheck.ShouldBeBitwiseEqual(DropoutCheck.Run<float>(Context, kernel, c, 0.3, 1234), first);
        var other = DropoutCheck.Run<float>(Context, kernel, c, 0.3, 1235);
        other[0].SequenceEqual(first[0]).ShouldBeFalse("another seed, another mask: O differs");
        other[1].SequenceEqual(first[1]).ShouldBeTrue("the log-sum-exp is that of the scores before dropout");

        var c64 = new AttentionCase(1, 45, 64, 1, 1, 64);
        var a = DropoutCheck.Factors<float>(Context, Stock("None_None_F32_64_Dropout"), c64, 0.3, 1234);
        var b = DropoutCheck.Factors<float>(Context, Stock("None_None_F32_64_Dropout"), c64, 0.3, 1235);
        // Two independent masks agree on a score with probability p² + (1 − p)² = 0.58.
        double agree = a.Zip(b, (x, y) => (x == 0) == (y == 0) ? 1.0 : 0.0).Average();
        agree.ShouldBeLessThan(0.7);
    }

    [Fact]
    public void PZeroIsAttentionWithoutDropoutAndTakesTheVariantWithoutIt()
    {
        var c = new AttentionCase(2, 37, 45, 2, 2, 64);
        DropoutCheck.ShouldBeBitwiseEqual(
            DropoutCheck.Run<float>(Context, Stock("None_None_F32_64_Dropout"), c, 0, 0),
            DropoutCheck.Run<float>(Context, Stock("None_None_F32_64"), c, 0, 0));

        AttentionRegistry.Find(MaskKind.None, BiasKind.None, DType.Float32, 64, 2, 2)!.Variant.Dropout.ShouldBeFalse();
        AttentionRegistry.Find(MaskKind.None, BiasKind.None, DType.Float32, 64, 2, 2, needDropout: true)!.Variant.Name
            .ShouldBe("XFormers.StockVariants.None_None_F32_64_Dropout");
    }

    [Fact]
    public void FmhaWithPTakesADropoutVariant()
    {
        using var q = Tensor<float>.RandomNormal(Context, 1, 1f, 1, 20, 2, 64);
        using var k = Tensor<float>.RandomNormal(Context, 2, 1f, 1, 24, 2, 64);
        using var v = Tensor<float>.RandomNormal(Context, 3, 1f, 1, 24, 2, 64);
        using var viaFmha = Fmha.MemoryEfficientAttention(q, k, v, new LowerTriangularMask(), p: 0.4, seed: 8);
        using var viaKernel = Stock("Causal_None_F32_64_Dropout").Forward(q, k, v, new LowerTriangularMask(), p: 0.4, seed: 8);
        viaFmha.ToFloatArray().SequenceEqual(viaKernel.Output.ToFloatArray()).ShouldBeTrue();
        using var plain = Fmha.MemoryEfficientAttention(q, k, v, new LowerTriangularMask());
        plain.ToFloatArray().SequenceEqual(viaFmha.ToFloatArray()).ShouldBeFalse();
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void APOutsideZeroToOneIsRefused(double p)
    {
        using var q = Tensor<float>.Zeros(Context, 1, 4, 1, 64);
        Should.Throw<ArgumentOutOfRangeException>(() => Fmha.MemoryEfficientAttention(q, q, q, p: p, seed: 1)).ParamName.ShouldBe("p");
        Should.Throw<ArgumentOutOfRangeException>(() => Stock("None_None_F32_64_Dropout").Forward(q, q, q, p: p, seed: 1)).ParamName.ShouldBe("p");
    }

    [Fact]
    public void DropoutNeedsASeedAndAVariantDeclaredWithIt()
    {
        using var q = Tensor<float>.Zeros(Context, 1, 4, 1, 64);
        Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttention(q, q, q, p: 0.1)).ParamName.ShouldBe("seed");

        var withoutDropout = Should.Throw<ArgumentException>(() => Stock("None_None_F32_64").Forward(q, q, q, p: 0.1, seed: 1));
        withoutDropout.ParamName.ShouldBe("p");
        withoutDropout.Message.ShouldContain("XFormers.StockVariants.None_None_F32_64 was declared without dropout");
        withoutDropout.Message.ShouldContain("[Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float32, Dropout = true)]");

        // No stock variant has dropout with ALiBi: the message lists none and names the declaration.
        var none = Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttention(q, q, q, NoMask.Instance.WithAlibi(AlibiBias.DefaultSlopes(1)), p: 0.1, seed: 1));
        none.Message.ShouldContain("with dropout");
        none.Message.ShouldContain("Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float32, Dropout = true)]");

        // Decoding with a KV cache runs without dropout.
        var kvMask = BlockDiagonalPaddedKeysMask.FromSeqlens(new[] { 1 }, 4, new[] { 3 });
        using var q1 = Tensor<float>.Zeros(Context, 1, 1, 1, 64);
        Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttention(q1, q, q, kvMask, p: 0.1, seed: 1)).ParamName.ShouldBe("p");
    }

    [Fact]
    public void ABackwardGivenAnotherPOrSeedThanItsForwardIsRefused()
    {
        var kernel = Stock("None_None_F32_64_Dropout");
        using var q = Tensor<float>.RandomNormal(Context, 1, 1f, 1, 8, 1, 64);
        using var dO = Tensor<float>.RandomNormal(Context, 2, 1f, 1, 8, 1, 64);
        using var forward = kernel.Forward(q, q, q, p: 0.2, seed: 3);

        var seed = Should.Throw<ArgumentException>(() => kernel.Backward(dO, forward, q, q, q, p: 0.2, seed: 4));
        seed.ParamName.ShouldBe("seed");
        seed.Message.ShouldContain("p = 0.2, seed = 3");
        Should.Throw<ArgumentException>(() => kernel.Backward(dO, forward, q, q, q, p: 0.3, seed: 3)).ParamName.ShouldBe("p");
        Should.Throw<ArgumentException>(() => kernel.Backward(dO, forward, q, q, q)).ParamName.ShouldBe("p");
        using var dq = Tensor<float>.Zeros(Context, 1, 8, 1, 64);
        using var dk = Tensor<float>.Zeros(Context, 1, 8, 1, 64);
        using var dv = Tensor<float>.Zeros(Context, 1, 8, 1, 64);
        Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttentionBackward(dO, forward.Output, forward.Lse, q, q, q, dq, dk, dv, kernel: kernel, p: 0.2, seed: 5))
            .ParamName.ShouldBe("seed");
        using var grads = kernel.Backward(dO, forward, q, q, q, p: 0.2, seed: 3);

        // A forward without dropout, a backward with it.
        using var plain = kernel.Forward(q, q, q);
        Should.Throw<ArgumentException>(() => kernel.Backward(dO, plain, q, q, q, p: 0.2, seed: 3)).ParamName.ShouldBe("p");
    }

    [Fact]
    public void TheSm90aKernelsNeverTakeACallThatDropsScores()
    {
        var args = new AttentionArgs<Half> { Batch = 1, Mq = 1, Mkv = 1, Hq = 1, Hkv = 1, Scale = 1f };
        HopperLauncher.CanLaunchForward(args).ShouldBeTrue();
        HopperLauncher.CanLaunchBackward(args).ShouldBeTrue();
        args.DropoutThreshold = 1u;
        HopperLauncher.CanLaunchForward(args).ShouldBeFalse();
        HopperLauncher.CanLaunchBackward(args).ShouldBeFalse();
    }
}
