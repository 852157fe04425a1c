using XFormers.Reference;
using XFormers.Tests.Kernels;

namespace XFormers.Tests.Mods;

/// <summary>
/// Score and mask mods end to end on the CPU: the generated kernels (SIMT for float32, the tensor-core kernels' scalar twins
/// for float16) against the fp64 reference with the same mods, forward and every gradient.
/// </summary>
public static class ModCases
{
    public const float Cap = 2f;

    public static double Softcap(double s, int b, int h, int q, int kv) => Cap * Math.Tanh(s / Cap);

    public static ReferenceAttention.MaskModFunction Window(int window) => (b, h, q, kv) => q >= kv && q - kv < window;

    public static int[] Documents(int tokens, params int[] lengths)
    {
        var ids = new int[tokens];
        int token = 0;
        for (int d = 0; d < lengths.Length; d++)
            for (int i = 0; i < lengths[d]; i++)
                ids[token++] = d;
        return ids;
    }
}

[Collection(CpuCollection.Name)]
public class ModAttentionTests(CpuContextFixture fixture)
{
    private XFormersContext Context => fixture.Context;

    private static void ShouldPass(AttentionErrors errors, DType dtype, int headDim = 32) =>
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(dtype, headDim), errors.ToString());

    [Fact]
    public void SoftcapMatchesTheReference()
    {
        var kernel = ModVariants.SoftcapF32().WithArguments(new ModVariants.Args { Cap = ModCases.Cap });
        // Scores up to several times the cap: the tanh is far from linear there.
        ShouldPass(AttentionCheck.Run<float>(Context, new AttentionCase(2, 37, 45, 2, 2, 32), kernel: kernel, scoreMod: ModCases.Softcap), DType.Float32);
    }

    [Fact]
    public void SlidingWindowMatchesTheReferenceAndSkipsTiles()
    {
        var kernel = ModVariants.WindowF32().WithArguments(new ModVariants.Args { Window = 9 });
        ShouldPass(AttentionCheck.Run<float>(Context, new AttentionCase(1, 150, 150, 2, 1, 32), kernel: kernel, maskMod: ModCases.Window(9)), DType.Float32);
    }

    [Fact]
    public void DocumentMaskReadsATableAndFollowsItsWrites()
    {
        int tokens = 90;
        var first = ModCases.Documents(tokens, 30, 1, 0, 44, 15);
        using var docIds = Tensor<int>.FromArray(Context, first, tokens);
        var kernel = ModVariants.DocumentF32().WithArguments(new ModVariants.Args { DocId = docIds });
        ShouldPass(AttentionCheck.Run<float>(Context, new AttentionCase(1, tokens, tokens, 2, 2, 32), kernel: kernel,
            maskMod: (b, h, q, kv) => first[q] == first[kv]), DType.Float32);

        // A write to the table bumps its version: the cached block mask is not reused.
        var second = ModCases.Documents(tokens, 10, 70, 10);
        docIds.CopyFrom(second);
        ShouldPass(AttentionCheck.Run<float>(Context, new AttentionCase(1, tokens, tokens, 2, 2, 32, Seed: 5), kernel: kernel,
            maskMod: (b, h, q, kv) => second[q] == second[kv]), DType.Float32);
    }

    [Fact]
    public void PrefixLmMatchesTheReference()
    {
        var kernel = ModVariants.PrefixLmF32().WithArguments(new ModVariants.Args { Prefix = 20 });
        ShouldPass(AttentionCheck.Run<float>(Context, new AttentionCase(2, 70, 70, 2, 2, 32), kernel: kernel,
            maskMod: (b, h, q, kv) => kv < 20 || q >= kv), DType.Float32);
    }

    [Fact]
    public void AlibiAsAScoreModEqualsTheBuiltInAlibi()
    {
        const int heads = 4;
        var slopes = AlibiBias.DefaultSlopes(heads);
        using var slopeTable = Tensor<float>.FromArray(Context, slopes, heads);
        var kernel = ModVariants.AlibiF32().WithArguments(new ModVariants.Args { Slopes = slopeTable });
        using var q = Tensor<float>.RandomNormal(Context, 1, 1f, 2, 50, heads, 32);
        using var k = Tensor<float>.RandomNormal(Context, 2, 1f, 2, 50, heads, 32);
        using var v = Tensor<float>.RandomNormal(Context, 3, 1f, 2, 50, heads, 32);
        using var dO = Tensor<float>.RandomNormal(Context, 4, 1f, 2, 50, heads, 32);
        var builtIn = new LowerTriangularMask().WithAlibi(slopes);
        using var expected = Fmha.MemoryEfficientAttentionForward(q, k, v, builtIn);
        using var actual = kernel.Forward(q, k, v, new LowerTriangularMask());
        AttentionCheck.Error(actual.Output.ToDoubleArray(), expected.Output.ToDoubleArray()).ShouldBeLessThan(1e-5);
        AttentionCheck.Error(actual.Lse.ToDoubleArray(), expected.Lse.ToDoubleArray()).ShouldBeLessThan(1e-5);
        using var expectedGrads = Fmha.MemoryEfficientAttentionBackward(dO, expected, q, k, v, builtIn);
        using var actualGrads = kernel.Backward(dO, actual, q, k, v, new LowerTriangularMask());
        AttentionCheck.Error(actualGrads.Query.ToDoubleArray(), expectedGrads.Query.ToDoubleArray()).ShouldBeLessThan(1e-5);
        AttentionCheck.Error(actualGrads.Key.ToDoubleArray(), expectedGrads.Key.ToDoubleArray()).ShouldBeLessThan(1e-5);
        AttentionCheck.Error(actualGrads.Value.ToDoubleArray(), expectedGrads.Value.ToDoubleArray()).ShouldBeLessThan(1e-5);
    }

    [Fact]
    public void ModsCombineWithACausalMaskAndATensorBiasWithItsGradient()
    {
        ShouldPass(AttentionCheck.Run<float>(Context, new AttentionCase(1, 40, 52, 2, 2, 32, MaskKind.Causal, BiasKind.Tensor, BiasRequiresGrad: true),
            kernel: ModVariants.CausalBiasModsF32(),
            scoreMod: (s, b, h, q, kv) => 5 * Math.Tanh(s / 5), maskMod: (b, h, q, kv) => kv % 3 != 1), DType.Float32);
    }

    [Fact]
    public void FullyMaskedRowsGiveZeroOutputMinusInfinityLseAndZeroGradients()
    {
        var errors = AttentionCheck.Run<float>(Context, new AttentionCase(1, 33, 40, 2, 2, 32), kernel: ModVariants.BlindRowsF32(),
            maskMod: (b, h, q, kv) => q % 4 != 2);
        ShouldPass(errors, DType.Float32);
        using var q = Tensor<float>.RandomNormal(Context, 1, 1f, 1, 8, 1, 32);
        using var o = ModVariants.BlindRowsF32().Forward(q, q, q);
        var lse = o.Lse.ToArray();
        lse[2].ShouldBe(float.NegativeInfinity);
        lse[6].ShouldBe(float.NegativeInfinity);
        o.Output.ToArray().Skip(2 * 32).Take(32).ShouldAllBe(x => x == 0f);
    }

    [Fact]
    public void ModsSeePositionsWithinBlockDiagonalSegments()
    {
        var c = AttentionCase.Packed(new[] { 9, 1, 0, 20 }, new[] { 12, 3, 2, 17 }, 2, 2, 32, MaskKind.BlockDiagonal);
        ShouldPass(AttentionCheck.Run<float>(Context, c, kernel: ModVariants.SegmentModsF32(),
            scoreMod: (s, b, h, q, kv) => h == 0 ? s : Math.Max(s, -2) + 0.1 * b,
            maskMod: (b, h, q, kv) => Math.Abs(q - kv) <= 3 + h), DType.Float32);
    }

    [Fact]
    public void TheRegistryNeverPicksAVariantWithMods()
    {
        using var q = Tensor<float>.RandomNormal(Context, 1, 1f, 1, 8, 1, 32);
        Fmha.SelectKernel(q, q, q).Variant.HasMods.ShouldBeFalse();
        ModVariants.WindowF32().Variant.HasMods.ShouldBeTrue();
        ModVariants.WindowF32().Variant.MaskMod.ShouldBe("SlidingWindow");
        ModVariants.SoftcapF32().Variant.ScoreMod.ShouldBe("Softcap");
        ModVariants.SoftcapF32().Variant.ModArgsType.ShouldBe(typeof(ModVariants.Args));
    }

    [Fact]
    public void UnboundOrBadArgumentsAreClearErrorsBeforeAnyLaunch()
    {
        using var q = Tensor<float>.RandomNormal(Context, 1, 1f, 1, 8, 1, 32);
        Should.Throw<ArgumentException>(() => ModVariants.WindowF32().Forward(q, q, q)).ParamName.ShouldBe("kernel");
        Should.Throw<ArgumentException>(() => ModVariants.WindowF32().WithArguments(5)).ParamName.ShouldBe("args");
        Should.Throw<InvalidOperationException>(() => ModVariants.BlindRowsF32().WithArguments(new ModVariants.Args()));

        var unset = ModVariants.DocumentF32().WithArguments(new ModVariants.Args());
        Should.Throw<ArgumentException>(() => unset.Forward(q, q, q)).Message.ShouldContain("args.DocId");

        using (var matrix = Tensor<int>.Zeros(Context, 8, 8))
        {
            var wrongRank = ModVariants.DocumentF32().WithArguments(new ModVariants.Args { DocId = matrix });
            Should.Throw<ArgumentException>(() => wrongRank.Forward(q, q, q)).Message.ShouldContain("rank 2");
        }

        var disposed = Tensor<int>.Zeros(Context, 8);
        var stale = ModVariants.DocumentF32().WithArguments(new ModVariants.Args { DocId = disposed });
        disposed.Dispose();
        Should.Throw<ObjectDisposedException>(() => stale.Forward(q, q, q)).Message.ShouldContain("args.DocId");

        using var other = XFormersContext.CreateCpu();
        using var foreign = Tensor<int>.Zeros(other, 8);
        var elsewhere = ModVariants.DocumentF32().WithArguments(new ModVariants.Args { DocId = foreign });
        Should.Throw<ArgumentException>(() => elsewhere.Forward(q, q, q)).Message.ShouldContain("another XFormersContext");
    }
}

/// <summary>The same mods through the tensor-core kernels' scalar twins (float16).</summary>
[Collection(TensorCoreCollection.Name)]
public class ModTensorCoreTests(TensorCoreFixture fixture)
{
    private static void ShouldPass(AttentionErrors errors) =>
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float16, 32), errors.ToString());

    [Fact]
    public void SoftcapMatchesTheReference() =>
        ShouldPass(AttentionCheck.Run<Half>(fixture.Context, new AttentionCase(1, 40, 70, 2, 2, 32),
            kernel: ModVariants.SoftcapF16().WithArguments(new ModVariants.Args { Cap = ModCases.Cap }), scoreMod: ModCases.Softcap));

    [Fact]
    public void SlidingWindowMatchesTheReference() =>
        ShouldPass(AttentionCheck.Run<Half>(fixture.Context, new AttentionCase(1, 90, 90, 2, 1, 32),
            kernel: ModVariants.WindowF16().WithArguments(new ModVariants.Args { Window = 17 }), maskMod: ModCases.Window(17)));

    [Fact]
    public void DocumentMaskMatchesTheReference()
    {
        var ids = ModCases.Documents(80, 25, 0, 40, 15);
        using var docIds = Tensor<int>.FromArray(fixture.Context, ids, 80);
        ShouldPass(AttentionCheck.Run<Half>(fixture.Context, new AttentionCase(1, 80, 80, 2, 2, 32),
            kernel: ModVariants.DocumentF16().WithArguments(new ModVariants.Args { DocId = docIds }), maskMod: (b, h, q, kv) => ids[q] == ids[kv]));
    }

    [Fact]
    public void ModsCombineWithACausalMaskAndATensorBias() =>
        ShouldPass(AttentionCheck.Run<Half>(fixture.Context, new AttentionCase(1, 40, 52, 2, 2, 32, MaskKind.Causal, BiasKind.Tensor, BiasRequiresGrad: true),
            kernel: ModVariants.CausalBiasModsF16(),
            scoreMod: (s, b, h, q, kv) => 5 * Math.Tanh(s / 5), maskMod: (b, h, q, kv) => kv % 3 != 1));
}
