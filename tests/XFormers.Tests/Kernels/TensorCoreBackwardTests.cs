using Xunit.Abstractions;

namespace XFormers.Tests.Kernels;

/// <summary>
/// The generated tensor-core backward (dK/dV pass and dQ pass, after the tensor-core forward) on a CPU accelerator with
/// 32-lane warps, where mma.sync runs its scalar twin: fragment layouts, re-packed Pᵀ and dSᵀ, masks, biases and GQA are
/// checked against fp64 without a GPU. Shapes cover both tile paths (interior tiles skip per-element masking), ragged
/// sizes, M = 1, Mq ≠ Mkv, rows that see no key and empty segments.
/// </summary>
[Collection(TensorCoreCollection.Name)]
public sealed class TensorCoreBackwardTests(TensorCoreFixture fixture, ITestOutputHelper output)
{
    private readonly XFormersContext context = fixture.Context;

    public static TheoryData<string, AttentionCase> Cases => new()
    {
        // Full 64 × 64 tiles (no per-element masking) beside ragged ones; GQA 2 → 1; Mq ≠ Mkv.
        { nameof(StockVariants.None_None_F16_64), new AttentionCase(1, 70, 75, 2, 1, 64) },
        // Causal: interior tiles below the diagonal, masked ones on it.
        { nameof(StockVariants.Causal_None_BF16_64), new AttentionCase(1, 130, 130, 1, 1, 64, MaskKind.Causal, Seed: 2) },
        { nameof(StockVariants.Causal_Alibi_BF16_32), new AttentionCase(1, 67, 67, 2, 2, 32, MaskKind.Causal, BiasKind.Alibi) },
        // Bottom-right with Mq > Mkv: the first 25 rows see no key (Lse = −∞, every gradient of theirs 0); bias gradient.
        { nameof(StockVariants.CausalFromBottomRight_Tensor_F16_16), new AttentionCase(1, 70, 45, 1, 1, 16, MaskKind.CausalFromBottomRight, BiasKind.Tensor, BiasRequiresGrad: true) },
        // Bottom-right with Mkv > Mq, HeadDim 128 (V fragments from shared memory, 16-row Q tiles, 32-key tiles in the dQ pass).
        { nameof(StockVariants.CausalFromBottomRight_None_BF16_128), new AttentionCase(1, 20, 70, 1, 1, 128, MaskKind.CausalFromBottomRight, Seed: 4) },
        // M = 1 with a bias broadcast over batch and rows; bias gradient with −∞ entries in the bias.
        { nameof(StockVariants.None_Tensor_BF16_32), new AttentionCase(2, 1, 50, 2, 2, 32, MaskKind.None, BiasKind.Tensor, BroadcastBias: true, Seed: 3) },
        { nameof(StockVariants.Causal_Tensor_F16_32), new AttentionCase(2, 37, 37, 2, 2, 32, MaskKind.Causal, BiasKind.Tensor, BiasRequiresGrad: true) },
        // Packed sequences: a length-1 segment, an empty one, GQA 4 → 2, ALiBi inside segments.
        { nameof(StockVariants.BlockDiagonal_Alibi_F16_16), AttentionCase.Packed(new[] { 1, 0, 37, 5 }, new[] { 1, 0, 37, 5 }, 4, 2, 16, MaskKind.BlockDiagonal, BiasKind.Alibi) },
        // Causal packed, an empty key segment whose queries see nothing, Mq ≠ Mkv per segment, HeadDim 128.
        { nameof(StockVariants.BlockDiagonalCausal_None_F16_128), AttentionCase.Packed(new[] { 30, 6, 40 }, new[] { 20, 0, 40 }, 1, 1, 128, MaskKind.BlockDiagonalCausal) },
        // A sliding window: both band edges cut tiles, and the tiles outside the band are skipped.
        { nameof(StockVariants.CausalLocalFromBottomRight_None_F16_64), new AttentionCase(1, 70, 90, 2, 1, 64, MaskKind.CausalLocalFromBottomRight, Seed: 6, Window: 21) },
        { nameof(StockVariants.BlockDiagonalCausalLocalFromBottomRight_None_BF16_64), AttentionCase.Packed(new[] { 30, 6, 40 }, new[] { 20, 9, 55 }, 2, 1, 64, MaskKind.BlockDiagonalCausalLocalFromBottomRight, seed: 7, window: 13) },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesFp64(string name, AttentionCase c)
    {
        var kernel = (AttentionKernel)typeof(StockVariants).GetMethod(name, System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)!.Invoke(null, null)!;
        AttentionCheck.TensorCoreShouldMatchFp64(context, output.WriteLine, name, kernel, c);
    }
}
