using XFormers.Reference;

namespace XFormers.Tests;

/// <summary>Local (sliding-window) masks and the bottom-right block-diagonal mask, declared with small tiles so bands cut several.</summary>
public static partial class LocalVariants
{
    [Attention(Mask = MaskKind.CausalLocalFromBottomRight, HeadDim = 16, DType = DType.Float32, BlockM = 16, BlockN = 16)]
    public static partial AttentionKernel CausalLocal();

    [Attention(Mask = MaskKind.BlockDiagonalCausalFromBottomRight, HeadDim = 16, DType = DType.Float32, BlockM = 16, BlockN = 16)]
    public static partial AttentionKernel PackedBottomRight();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float32, BlockM = 32, BlockN = 16)]
    public static partial AttentionKernel PackedLocalAlibi();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16,
        DType = DType.Float32, BlockM = 16, BlockN = 32)]
    public static partial AttentionKernel PackedLocalBottomRightBias();
}

[Collection(CpuCollection.Name)]
public class LocalAttentionTests(CpuContextFixture fixture)
{
    // Segments with Mq > Mkv (early rows see nothing from the bottom-right), Mq < Mkv, empty sides and length 1.
    private static readonly int[] QLens = { 3, 20, 1, 0, 12, 31 }, KvLens = { 5, 0, 9, 4, 30, 17 };

    public static TheoryData<string, AttentionCase> Cases => new()
    {
        { nameof(LocalVariants.CausalLocal), new AttentionCase(2, 50, 50, 2, 2, 16, MaskKind.CausalLocalFromBottomRight, Window: 7) },
        { nameof(LocalVariants.CausalLocal), new AttentionCase(1, 20, 57, 4, 2, 16, MaskKind.CausalLocalFromBottomRight, Window: 9, Seed: 2) },
        { nameof(LocalVariants.CausalLocal), new AttentionCase(1, 57, 20, 2, 1, 16, MaskKind.CausalLocalFromBottomRight, Window: 5, Seed: 3) },
        { nameof(LocalVariants.CausalLocal), new AttentionCase(1, 40, 40, 2, 2, 16, MaskKind.CausalLocalFromBottomRight, Window: 1, Seed: 4) },
        { nameof(LocalVariants.CausalLocal), new AttentionCase(1, 40, 45, 2, 2, 16, MaskKind.CausalLocalFromBottomRight, Window: 1000, Seed: 5) },
        { nameof(LocalVariants.PackedBottomRight), AttentionCase.Packed(QLens, KvLens, 2, 1, 16, MaskKind.BlockDiagonalCausalFromBottomRight) },
        { nameof(LocalVariants.PackedLocalAlibi), AttentionCase.Packed(QLens, KvLens, 4, 2, 16, MaskKind.BlockDiagonalCausalLocal, BiasKind.Alibi, window: 4) },
        { nameof(LocalVariants.PackedLocalAlibi), AttentionCase.Packed(KvLens, QLens, 2, 2, 16, MaskKind.BlockDiagonalCausalLocal, BiasKind.Alibi, seed: 2, window: 1) },
        {
            nameof(LocalVariants.PackedLocalBottomRightBias),
            AttentionCase.Packed(QLens, KvLens, 2, 2, 16, MaskKind.BlockDiagonalCausalLocalFromBottomRight, BiasKind.Tensor, window: 6) with { BiasRequiresGrad = true }
        },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardAndBackwardMatchFp64(string name, AttentionCase c)
    {
        var kernel = (AttentionKernel)typeof(LocalVariants).GetMethod(name)!.Invoke(null, null)!;
        var errors = AttentionCheck.Run<float>(fixture.Context, c, kernel: kernel);
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float32), $"{name} {c}: {errors}");
    }

    [Theory]
    [InlineData(MaskKind.CausalLocalFromBottomRight)]
    [InlineData(MaskKind.BlockDiagonalCausalLocal)]
    [InlineData(MaskKind.BlockDiagonalCausalLocalFromBottomRight)]
    [InlineData(MaskKind.BlockDiagonalCausalFromBottomRight)]
    public void TheReferenceMaskEqualsTheDenseWindowBias(MaskKind mask)
    {
        // The oracle two ways: the reference's mask kinds against LocalAttentionReference's dense −∞ bias (a full window
        // for the plain bottom-right mask).
        bool packed = mask.IsBlockDiagonal();
        int[]? qStarts = packed ? BlockDiagonalMask.FromSeqlens(QLens).QSeqStarts.ToArray() : null;
        int[]? kvStarts = packed ? BlockDiagonalMask.FromSeqlens(KvLens).QSeqStarts.ToArray() : null;
        int mq = packed ? QLens.Sum() : 23, mkv = packed ? KvLens.Sum() : 31, window = mask.IsLocal() ? 5 : int.MaxValue / 2;
        var masked = new ReferenceAttention.Problem(1, mq, mkv, 1, 1, 8, 0.5, mask, qStarts, kvStarts, Window: window);
        var dense = LocalAttentionReference.Bias(mq, mkv, window, mask.IsFromBottomRight(), qStarts, kvStarts);
        var biased = new ReferenceAttention.Problem(1, mq, mkv, 1, 1, 8, 0.5, Bias: dense);
        int visible = 0;
        for (int i = 0; i < mq; i++)
        {
            for (int j = 0; j < mkv; j++)
            {
                bool expected = !double.IsNegativeInfinity(dense[(long)i * mkv + j]);
                ReferenceAttention.Visible(masked, i, j).ShouldBe(expected, $"({i}, {j})");
                visible += expected ? 1 : 0;
            }
        }
        visible.ShouldBeGreaterThan(0);

        var q = HostRandom.Normal(1, mq * 8, 1f).Select(x => (double)x).ToArray();
        var kv = HostRandom.Normal(2, mkv * 8, 1f).Select(x => (double)x).ToArray();
        var a = ReferenceAttention.Forward(masked, q, kv, kv);
        var b = ReferenceAttention.Forward(biased, q, kv, kv);
        a.Output.ShouldBe(b.Output, 1e-12);
    }

    [Fact]
    public void FmhaRunsALocalMaskOnTheStockVariant()
    {
        using var q = Tensor<Half>.RandomNormal(fixture.Context, 1, 1f, 1, 70, 2, 64);
        var mask = new LowerTriangularFromBottomRightMask().MakeLocalAttention(24);
        Fmha.SelectKernel(q, q, q, mask).Variant.Name.ShouldBe("XFormers.StockVariants.CausalLocalFromBottomRight_None_F16_64");
        var errors = AttentionCheck.Run<Half>(fixture.Context, new AttentionCase(1, 70, 90, 2, 2, 64, MaskKind.CausalLocalFromBottomRight, Window: 24));
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float16), errors.ToString());
    }

    [Fact]
    public void TheWindowTravelsWithTheMask()
    {
        var segments = BlockDiagonalMask.FromSeqlens(new[] { 4, 6 }, new[] { 5, 9 });
        new LowerTriangularFromBottomRightMask().MakeLocalAttention(3).Window.ShouldBe(3);
        segments.MakeCausal().MakeLocalAttention(8).Mask.ShouldBe(MaskKind.BlockDiagonalCausalLocal);
        var bottomRight = segments.MakeCausalFromBottomRight();
        bottomRight.Mask.ShouldBe(MaskKind.BlockDiagonalCausalFromBottomRight);
        bottomRight.Window.ShouldBe(0);
        var local = bottomRight.MakeLocalAttention(2);
        local.Mask.ShouldBe(MaskKind.BlockDiagonalCausalLocalFromBottomRight);
        local.KvSeqlens.ShouldBe(new[] { 5, 9 });
        local.ToString().ShouldContain("window=2");
        var withAlibi = local.WithAlibi(AlibiBias.DefaultSlopes(2));
        withAlibi.Window.ShouldBe(2);
        withAlibi.Segments.ShouldBeSameAs(local);
    }

    [Fact]
    public void AWindowBelowOneIsRefusedNamingIt()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new LowerTriangularFromBottomRightMask().MakeLocalAttention(0)).ParamName.ShouldBe("window");
        Should.Throw<ArgumentOutOfRangeException>(() => new LowerTriangularFromBottomRightLocalAttentionMask(-3)).ParamName.ShouldBe("window");
        Should.Throw<ArgumentOutOfRangeException>(() => BlockDiagonalCausalLocalAttentionMask.FromSeqlens(new[] { 2 }, null, 0)).ParamName.ShouldBe("window");
        Should.Throw<ArgumentOutOfRangeException>(() => BlockDiagonalCausalMask.FromSeqlens(new[] { 2 }).MakeLocalAttention(-1)).ParamName.ShouldBe("window");
    }

    [Fact]
    public void ALocalVariantRefusesAnotherMaskBeforeAnyLaunch()
    {
        using var q = Tensor<float>.RandomNormal(fixture.Context, 1, 1f, 1, 8, 1, 16);
        var error = Should.Throw<ArgumentException>(() => LocalVariants.CausalLocal().Forward(q, q, q, new LowerTriangularFromBottomRightMask()));
        error.Message.ShouldContain("CausalLocalFromBottomRight");
    }

    [Fact]
    public void VariantsCarryTheirMaskKinds()
    {
        LocalVariants.CausalLocal().Variant.Mask.IsLocal().ShouldBeTrue();
        LocalVariants.PackedBottomRight().Variant.Mask.IsFromBottomRight().ShouldBeTrue();
        LocalVariants.PackedBottomRight().Variant.Mask.IsLocal().ShouldBeFalse();
        MaskKind.BlockDiagonal.IsCausal().ShouldBeFalse();
        MaskKind.CausalLocalFromBottomRight.IsBlockDiagonal().ShouldBeFalse();
    }
}
