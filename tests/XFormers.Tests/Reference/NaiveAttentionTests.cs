using XFormers.Reference;

namespace XFormers.Tests.Reference;

/// <summary>The accelerator's materializing reference against the fp64 host reference, on the CPU accelerator.</summary>
[Collection(CpuCollection.Name)]
public class NaiveAttentionTests(CpuContextFixture fixture)
{
    public static TheoryData<AttentionCase> Cases => new()
    {
        new AttentionCase(2, 19, 23, 4, 2, 16),
        new AttentionCase(1, 17, 17, 2, 2, 32, MaskKind.Causal, BiasKind.Alibi),
        new AttentionCase(1, 9, 21, 2, 1, 16, MaskKind.CausalFromBottomRight, BiasKind.Tensor, BiasRequiresGrad: true),
        new AttentionCase(2, 13, 11, 2, 2, 16, MaskKind.None, BiasKind.Tensor, BroadcastBias: true),
        new AttentionCase(1, 1, 5, 3, 1, 16, FiveD: true),
        AttentionCase.Packed(new[] { 5, 0, 9 }, new[] { 3, 4, 8 }, 2, 2, 16, MaskKind.BlockDiagonal, BiasKind.Alibi),
        AttentionCase.Packed(new[] { 6, 1, 7 }, new[] { 6, 2, 7 }, 4, 2, 16, MaskKind.BlockDiagonalCausal),
        // Mkv < Mq bottom-right: the first rows see no key (O = 0, Lse = −∞).
        new AttentionCase(1, 12, 5, 1, 1, 16, MaskKind.CausalFromBottomRight),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Float32MatchesFp64(AttentionCase c) =>
        Check<float>(c).Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float32), c.ToString());

    [Theory]
    [MemberData(nameof(Cases))]
    public void Float16MatchesFp64(AttentionCase c) =>
        // S, P and dS are rounded to the dtype when stored, so the naive path is looser than the fused kernels.
        Check<Half>(c).Max.ShouldBeLessThan(16 * ElementType.UnitRoundoff(DType.Float16), c.ToString());

    [Fact]
    public void BFloat16MatchesFp64() =>
        Check<BFloat16>(new AttentionCase(1, 17, 17, 2, 2, 32, MaskKind.Causal, BiasKind.Alibi))
            .Max.ShouldBeLessThan(16 * ElementType.UnitRoundoff(DType.BFloat16));

    private AttentionErrors Check<T>(AttentionCase c)
        where T : unmanaged =>
        AttentionCheck.Run<T>(fixture.Context, c, backward: true, naive: true);
}
