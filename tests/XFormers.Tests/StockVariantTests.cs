namespace XFormers.Tests;

/// <summary>
/// Every stock variant, forward and backward, against the fp64 reference at shapes that stress its mask:
/// ragged lengths (M not a multiple of the tile), M = 1, Mq ≠ Mkv, grouped-query heads, packed sequences
/// with a length-1 and an empty segment, rows that see no key.
/// </summary>
[Collection(CpuCollection.Name)]
public class StockVariantTests(CpuContextFixture fixture)
{
    public static TheoryData<string> StockVariantNames()
    {
        var data = new TheoryData<string>();
        foreach (var kernel in AttentionRegistry.Variants.Where(k => k.Variant.Name.StartsWith("XFormers.StockVariants.", StringComparison.Ordinal)))
            data.Add(kernel.Variant.Name);
        return data;
    }

    public static IEnumerable<AttentionCase> CasesFor(AttentionVariant v)
    {
        int k = v.HeadDim;
        // Local masks: a window shorter than the sequences, so each band has both edges.
        int window = v.Mask.IsLocal() ? 6 : 0;
        if (v.Mask.IsBlockDiagonal())
        {
            yield return AttentionCase.Packed(new[] { 1, 0, 37, 5 }, new[] { 1, 0, 37, 5 }, 2, 2, k, v.Mask, v.Bias, window: window) with { BiasRequiresGrad = v.Bias == BiasKind.Tensor };
            // Mq != Mkv per segment, an empty key segment (its queries see nothing), GQA 4 → 2.
            yield return AttentionCase.Packed(new[] { 3, 20, 1 }, new[] { 5, 0, 9 }, 4, 2, k, v.Mask, v.Bias, seed: 7, window: window);
        }
        else
        {
            yield return new AttentionCase(2, 37, 37, 2, 2, k, v.Mask, v.Bias, BiasRequiresGrad: v.Bias == BiasKind.Tensor, Window: window);
            yield return new AttentionCase(1, 1, 50, 2, 2, k, v.Mask, v.Bias, BroadcastBias: v.Bias == BiasKind.Tensor, Seed: 3, Window: window);
            // Mq > Mkv: bottom-right causal leaves the first rows with no key; GQA 4 → 2.
            yield return new AttentionCase(1, 70, 33, 4, 2, k, v.Mask, v.Bias, Seed: 5, Window: window);
        }
    }

    [Theory]
    [MemberData(nameof(StockVariantNames))]
    public void MatchesFloat64Reference(string name)
    {
        var kernel = AttentionRegistry.Variants.Single(k => k.Variant.Name == name);
        double tolerance = AttentionCheck.Tolerance(kernel.Variant.DType, kernel.Variant.HeadDim);
        foreach (var c in CasesFor(kernel.Variant))
        {
            var errors = kernel.Variant.DType switch
            {
                DType.Float32 => AttentionCheck.Run<float>(fixture.Context, c, kernel: kernel),
                DType.Float16 => AttentionCheck.Run<Half>(fixture.Context, c, kernel: kernel),
                _ => AttentionCheck.Run<BFloat16>(fixture.Context, c, kernel: kernel),
            };
            errors.Max.ShouldBeLessThanOrEqualTo(tolerance, $"{c}: {errors}");
        }
    }
}
