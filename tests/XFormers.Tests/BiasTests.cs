namespace XFormers.Tests;

[Collection(CpuCollection.Name)]
public class BiasTests(CpuContextFixture fixture)
{
    [Fact]
    public void FromSeqlensComputesStartsAndTotals()
    {
        var mask = BlockDiagonalMask.FromSeqlens(new[] { 37, 120, 8, 200 });
        mask.QSeqStarts.ShouldBe(new[] { 0, 37, 157, 165, 365 });
        mask.KvSeqStarts.ShouldBe(mask.QSeqStarts);
        mask.TotalQ.ShouldBe(365);
        mask.Mask.ShouldBe(MaskKind.BlockDiagonal);
        mask.MakeCausal().Mask.ShouldBe(MaskKind.BlockDiagonalCausal);
        mask.MakeCausal().QSeqlens.ShouldBe(mask.QSeqlens);
    }

    [Fact]
    public void SplitRecoversTheSegments()
    {
        var mask = BlockDiagonalMask.FromSeqlens(new[] { 3, 0, 5 }, new[] { 2, 4, 1 });
        var values = Enumerable.Range(0, 8 * 2 * 4).Select(x => (float)x).ToArray();
        using var packed = Tensor<float>.FromArray(fixture.Context, values, 1, 8, 2, 4);
        var parts = mask.Split(packed);
        parts.Select(p => p.ShapeString).ShouldBe(new[] { "[1, 3, 2, 4]", "[1, 0, 2, 4]", "[1, 5, 2, 4]" });
        parts[2].ToFloatArray().ShouldBe(values.Skip(3 * 8).ToArray());
        using var kv = Tensor<float>.Zeros(fixture.Context, 1, 7, 2, 4);
        mask.SplitKv(kv).Select(p => p.Dim(1)).ShouldBe(new[] { 2, 4, 1 });
        Should.Throw<ArgumentException>(() => mask.Split(kv)).ParamName.ShouldBe("tensor");
    }

    [Fact]
    public void FromTensorListPacksAndMasks()
    {
        using var a = Tensor<float>.RandomNormal(fixture.Context, 1, 1f, 1, 3, 2, 4);
        using var b = Tensor<float>.RandomNormal(fixture.Context, 2, 1f, 1, 5, 2, 4);
        var (mask, packed) = BlockDiagonalMask.FromTensorList(new[] { a, b });
        using (packed)
        {
            packed.ShapeString.ShouldBe("[1, 8, 2, 4]");
            mask.QSeqlens.ShouldBe(new[] { 3, 5 });
            packed.ToFloatArray().ShouldBe(a.ToFloatArray().Concat(b.ToFloatArray()).ToArray());
        }
    }

    [Fact]
    public void AlibiDefaultSlopesFollowThePaper()
    {
        AlibiBias.DefaultSlopes(8).ShouldBe(Enumerable.Range(1, 8).Select(k => (float)Math.Pow(2, -k)).ToArray());
        // 12 heads: the 8 slopes of 8 heads, then every other slope of 16 heads (2^-0.5, 2^-1.5, ...).
        var twelve = AlibiBias.DefaultSlopes(12);
        twelve.Length.ShouldBe(12);
        twelve.Take(8).ShouldBe(AlibiBias.DefaultSlopes(8));
        twelve.Skip(8).ShouldBe(new[] { 0.5, 1.5, 2.5, 3.5 }.Select(e => (float)Math.Pow(2, -e)).ToArray(), tolerance: 1e-7);
    }

    [Fact]
    public void AnAdditivePartCannotBeAddedTwice()
    {
        using var bias = Tensor<float>.Zeros(fixture.Context, 1, 1, 4, 4);
        var withAlibi = new LowerTriangularMask().WithAlibi(new[] { 0.5f });
        withAlibi.Mask.ShouldBe(MaskKind.Causal);
        withAlibi.Bias.ShouldBe(BiasKind.Alibi);
        Should.Throw<InvalidOperationException>(() => withAlibi.WithTensorBias(bias));
    }
}
