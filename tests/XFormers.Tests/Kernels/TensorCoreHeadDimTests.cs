using Xunit.Abstractions;

namespace XFormers.Tests.Kernels;

/// <summary>Tensor-core variants at head dims the stock table does not hold.</summary>
public static partial class HeadDimVariants
{
    [Attention(Mask = MaskKind.Causal, HeadDim = 40, DType = DType.Float16)]
    internal static partial AttentionKernel Causal40();

    [Attention(Mask = MaskKind.None, HeadDim = 136, DType = DType.BFloat16)]
    internal static partial AttentionKernel Dense136();

    [Attention(Mask = MaskKind.Causal, HeadDim = 248, DType = DType.Float16)]
    internal static partial AttentionKernel Causal248();

    [Attention(Mask = MaskKind.Causal, HeadDim = 160, DType = DType.Float16)]
    internal static partial AttentionKernel Causal160();

    [Attention(Mask = MaskKind.None, HeadDim = 192, DType = DType.BFloat16)]
    internal static partial AttentionKernel Dense192();
}

/// <summary>
/// The mma.sync kernels at head dims that are not powers of two or exceed 128, forward and backward on the CPU
/// accelerator against fp64: the D pass's rows of HeadDim / 4 words that are not a power of two of lanes, the forward's
/// 32-key tiles, the output-column slices of the forward, dK/dV and dQ passes (uneven at 256's dQ), and head dims of
/// 16·n + 8 computed over 8 zero columns (40, 136, and 248 with ragged staging and slices). Sizes are small: these
/// kernels run their scalar twins on the CPU.
/// </summary>
[Collection(TensorCoreCollection.Name)]
public sealed class TensorCoreHeadDimTests(TensorCoreFixture fixture, ITestOutputHelper output)
{
    private readonly XFormersContext context = fixture.Context;

    public static TheoryData<string, AttentionCase> Cases => new()
    {
        // 20 and 24 words a row: the D pass's rows of 4 and 8 lanes; GQA 2 → 1.
        { nameof(StockVariants.Causal_None_F16_80), new AttentionCase(1, 16, 16, 2, 1, 80, MaskKind.Causal) },
        // 16·n + 8: the last k-step's 8 zero columns, in shared rows and in fragments read from global memory.
        { nameof(HeadDimVariants.Causal40), new AttentionCase(1, 19, 19, 2, 2, 40, MaskKind.Causal, Seed: 7) },
        { nameof(HeadDimVariants.Dense136), new AttentionCase(1, 11, 23, 1, 1, 136, Seed: 8) },
        // 32-key tiles whose 1984 words do not divide among 128 threads; O in two slices, dQ in three (the last 56 wide).
        { nameof(HeadDimVariants.Causal248), new AttentionCase(1, 13, 13, 1, 1, 248, MaskKind.Causal, Seed: 9) },
        { nameof(StockVariants.None_None_BF16_96), new AttentionCase(1, 20, 45, 1, 1, 96, Seed: 2) },
        // 64-key forward tiles, dK/dV in two slices of 80 columns.
        { nameof(HeadDimVariants.Causal160), new AttentionCase(1, 24, 24, 1, 1, 160, MaskKind.Causal, Seed: 3) },
        // 32-key forward tiles; dK/dV and dQ in two slices of 96.
        { nameof(HeadDimVariants.Dense192), new AttentionCase(1, 17, 26, 1, 1, 192, Seed: 4) },
        // O in two slices of 128, dK/dV in four of 64, dQ in three of 96 (the last one 64 wide).
        { nameof(StockVariants.Causal_None_BF16_256), new AttentionCase(1, 14, 14, 1, 1, 256, MaskKind.Causal, Seed: 5) },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesFp64(string name, AttentionCase c)
    {
        AttentionCheck.TensorCoreShouldMatchFp64(context, output.WriteLine, name, Kernel(name), c);
    }

    private static AttentionKernel Kernel(string name)
    {
        const System.Reflection.BindingFlags flags = System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic;
        var method = typeof(HeadDimVariants).GetMethod(name, flags) ?? typeof(StockVariants).GetMethod(name, flags)!;
        return (AttentionKernel)method.Invoke(null, null)!;
    }
}
