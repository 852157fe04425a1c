namespace XFormers.Tests;

/// <summary>Variants declared by this test assembly: they register beside the stock ones at load.</summary>
public static partial class TestVariants
{
    /// <summary>A head dim the runtime has no stock variant for, with explicit tiles.</summary>
    [Attention(Mask = MaskKind.None, HeadDim = 48, DType = DType.Float32, BlockM = 16, BlockN = 32)]
    public static partial AttentionKernel Dense48();

    /// <summary>Grouped-query attention with the grouping fixed at build time: 8 query heads over 2 KV heads.</summary>
    [Attention(Mask = MaskKind.Causal, HeadDim = 32, DType = DType.Float16, Heads = 8, KvHeads = 2)]
    public static partial AttentionKernel CausalGqa8x2();

    /// <summary>A key tile that is a multiple of 16 but not a power of two (BackwardKv groups of 48 threads).</summary>
    [Attention(Mask = MaskKind.CausalFromBottomRight, HeadDim = 32, DType = DType.Float32, BlockM = 16, BlockN = 48)]
    public static partial AttentionKernel BottomRightTile48();

    /// <summary>Forward only.</summary>
    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.BFloat16, Backward = false)]
    internal static partial AttentionKernel ForwardOnlyAlibi();
}

[Collection(CpuCollection.Name)]
public class UserVariantTests(CpuContextFixture fixture)
{
    [Fact]
    public void DeclaredVariantsAreRegistered()
    {
        var names = AttentionRegistry.Variants.Select(k => k.Variant.Name).ToList();
        names.ShouldContain("XFormers.Tests.TestVariants.Dense48");
        names.ShouldContain("XFormers.Tests.TestVariants.CausalGqa8x2");
        names.ShouldContain("XFormers.Tests.TestVariants.ForwardOnlyAlibi");
        TestVariants.Dense48().Variant.BlockM.ShouldBe(16);
        TestVariants.CausalGqa8x2().Variant.GroupSize.ShouldBe(4);
        TestVariants.ForwardOnlyAlibi().Variant.Backward.ShouldBeFalse();
    }

    [Fact]
    public void FmhaDispatchesAnUnstockedHeadDimToTheUserVariant()
    {
        using var q = Tensor<float>.RandomNormal(fixture.Context, 1, 1f, 1, 20, 2, 48);
        Fmha.SelectKernel(q, q, q).ShouldBeSameAs(TestVariants.Dense48());
        var errors = AttentionCheck.Run<float>(fixture.Context, new AttentionCase(1, 20, 29, 2, 2, 48));
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float32), errors.ToString());
    }

    [Fact]
    public void FixedGroupingBeatsTheRuntimeGroupedStockVariant()
    {
        using var q8 = Tensor<Half>.RandomNormal(fixture.Context, 1, 1f, 1, 16, 8, 32);
        using var k2 = Tensor<Half>.RandomNormal(fixture.Context, 2, 1f, 1, 16, 2, 32);
        Fmha.SelectKernel(q8, k2, k2, new LowerTriangularMask()).ShouldBeSameAs(TestVariants.CausalGqa8x2());

        // 4 query heads over 2 is another grouping: the stock variant takes it.
        using var q4 = Tensor<Half>.RandomNormal(fixture.Context, 1, 1f, 1, 16, 4, 32);
        Fmha.SelectKernel(q4, k2, k2, new LowerTriangularMask()).Variant.Name.ShouldStartWith("XFormers.StockVariants.");
    }

    [Fact]
    public void FixedGroupingVariantMatchesTheReferenceInBmghkLayout()
    {
        var c = new AttentionCase(2, 33, 33, 8, 2, 32, MaskKind.Causal, FiveD: true);
        var errors = AttentionCheck.Run<Half>(fixture.Context, c, kernel: TestVariants.CausalGqa8x2());
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float16, 32), errors.ToString());
    }

    [Fact]
    public void NonPowerOfTwoKeyTileMatchesTheReference()
    {
        var errors = AttentionCheck.Run<float>(fixture.Context, new AttentionCase(2, 61, 100, 2, 1, 32, MaskKind.CausalFromBottomRight), kernel: TestVariants.BottomRightTile48());
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float32), errors.ToString());
    }

    [Fact]
    public void ForwardOnlyVariantRefusesBackward()
    {
        var c = new AttentionCase(1, 19, 19, 2, 2, 64, MaskKind.Causal, BiasKind.Alibi);
        AttentionCheck.Run<BFloat16>(fixture.Context, c, backward: false, kernel: TestVariants.ForwardOnlyAlibi())
            .Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.BFloat16, 64));
        var ex = Should.Throw<ArgumentException>(() => AttentionCheck.Run<BFloat16>(fixture.Context, c, kernel: TestVariants.ForwardOnlyAlibi()));
        ex.ParamName.ShouldBe("kernel");
        ex.Message.ShouldContain("Backward = false");
    }
}
