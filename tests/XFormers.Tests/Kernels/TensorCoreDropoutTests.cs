using Xunit.Abstractions;

namespace XFormers.Tests.Kernels;

/// <summary>
/// Attention dropout in the tensor-core kernels (mma.sync's scalar twins on a CPU accelerator with 32-lane warps): the
/// forward draws the oracle's mask where a lane holds two keys of a group of four (and where a packed segment starts at an
/// odd key: a dropout variant's key tiles start on a multiple of four), and forward and gradients match
/// <see cref="Reference.DropoutReference"/> in fp64.
/// </summary>
[Collection(TensorCoreCollection.Name)]
public sealed class TensorCoreDropoutTests(TensorCoreFixture fixture, ITestOutputHelper output)
{
    private readonly XFormersContext context = fixture.Context;

    private static AttentionKernel Kernel(string name) => name == nameof(DropoutVariants.PackedCausalF16)
        ? DropoutVariants.PackedCausalF16()
        : AttentionRegistry.Variants.Single(k => k.Variant.Name == "XFormers.StockVariants." + name);

    [Fact]
    public void TheMaskIsTheOraclesAndKeepsOneMinusP()
    {
        var kernel = Kernel("None_None_F16_64_Dropout");
        AttentionCheck.UsesTensorCoreBackward(context, kernel).ShouldBeTrue();
        // 2 · 70 · 64 = 8960 scores (a ragged row tile), GQA 2 → 1; fp16 outputs: a kept factor to the output's rounding.
        var c = new AttentionCase(1, 70, 64, 2, 1, 64);
        var factors = DropoutCheck.Factors<Half>(context, kernel, c, 0.4, 31);
        var (kept, visible) = DropoutCheck.ShouldMatchTheOracle(factors, c, context, 0.4, 31, 2e-3);
        DropoutCheck.ShouldKeepOneMinusP(kept, visible, 0.4);
    }

    [Fact]
    public void PackedSequencesWithOddStartsDrawTheOraclesMask()
    {
        // Key segments start at 3, 12 and 23: the forward's and the dQ pass's key tiles start before them, on a multiple of four.
        var c = AttentionCase.Packed(new[] { 5, 0, 20, 7 }, new[] { 3, 9, 11, 9 }, 4, 2, 32, MaskKind.BlockDiagonalCausal);
        var factors = DropoutCheck.Factors<Half>(context, DropoutVariants.PackedCausalF16(), c, 0.3, 77);
        DropoutCheck.ShouldMatchTheOracle(factors, c, context, 0.3, 77, 2e-3).Kept.ShouldBeGreaterThan(0);
    }

    public static TheoryData<string, AttentionCase, double> Cases => new()
    {
        // Full and ragged tiles; GQA 2 → 1; Mq ≠ Mkv.
        { "None_None_F16_64_Dropout", new AttentionCase(1, 70, 75, 2, 1, 64), 0.2 },
        { "Causal_None_BF16_64_Dropout", new AttentionCase(1, 70, 70, 1, 1, 64, MaskKind.Causal, Seed: 2), 0.5 },
        // HeadDim 128: V from shared memory in the dK/dV pass, 16-row Q tiles, 32-key tiles in the dQ pass.
        { "Causal_None_F16_128_Dropout", new AttentionCase(1, 40, 40, 1, 1, 128, MaskKind.Causal, Seed: 4), 0.3 },
        // Packed with odd segment starts (key tiles start before them, on a multiple of four), an empty key segment, GQA 4 → 2.
        { nameof(DropoutVariants.PackedCausalF16), AttentionCase.Packed(new[] { 3, 20, 1, 9 }, new[] { 5, 0, 9, 12 }, 4, 2, 32, MaskKind.BlockDiagonalCausal, seed: 7), 0.3 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardAndGradientsMatchTheFp64OracleWithTheSameMask(string name, AttentionCase c, double p)
    {
        AttentionCheck.TensorCoreShouldMatchFp64(context, output.WriteLine, name, Kernel(name), c, p, dropoutSeed: 42);
    }

    [Fact]
    public void TheSameSeedGivesTheSameBitsAndPZeroIsAttentionWithoutDropout()
    {
        // The variants the other tests of this collection compile (a kernel compiles once per accelerator).
        var c = new AttentionCase(1, 24, 30, 2, 1, 64, MaskKind.Causal, Seed: 3);
        var first = DropoutCheck.Run<BFloat16>(context, Kernel("Causal_None_BF16_64_Dropout"), c, 0.3, 1234);
        DropoutCheck.ShouldBeBitwiseEqual(DropoutCheck.Run<BFloat16>(context, Kernel("Causal_None_BF16_64_Dropout"), c, 0.3, 1234), first);
        DropoutCheck.ShouldBeBitwiseEqual(
            DropoutCheck.Run<BFloat16>(context, Kernel("Causal_None_BF16_64_Dropout"), c, 0, 0),
            DropoutCheck.Run<BFloat16>(context, Kernel("Causal_None_BF16_64"), c, 0, 0));
    }
}
