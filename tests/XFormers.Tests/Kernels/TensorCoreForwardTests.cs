namespace XFormers.Tests.Kernels;

/// <summary>
/// The generated tensor-core forward kernels on a CPU accelerator with 32-lane warps, where the inline-PTX helpers run
/// their scalar twins (mma.sync emulated through a shared exchange and warp barriers): fragment layouts, masking and the online softmax are
/// checked against fp64 without a GPU.
/// </summary>
[Collection(TensorCoreCollection.Name)]
public sealed class TensorCoreForwardTests(TensorCoreFixture fixture)
{
    private readonly XFormersContext context = fixture.Context;

    public static TheoryData<string, AttentionCase> Cases => new()
    {
        { nameof(StockVariants.None_None_F16_64), new AttentionCase(1, 70, 75, 2, 1, 64) },
        { nameof(StockVariants.Causal_Alibi_BF16_32), new AttentionCase(1, 67, 67, 1, 1, 32, MaskKind.Causal, BiasKind.Alibi) },
        { nameof(StockVariants.CausalFromBottomRight_Tensor_F16_16), new AttentionCase(1, 70, 45, 1, 1, 16, MaskKind.CausalFromBottomRight, BiasKind.Tensor) },
        { nameof(StockVariants.BlockDiagonalCausal_None_F16_128), AttentionCase.Packed(new[] { 30, 0, 40 }, new[] { 20, 9, 40 }, 1, 1, 128, MaskKind.BlockDiagonalCausal) },
        { nameof(StockVariants.CausalLocalFromBottomRight_None_BF16_128), new AttentionCase(1, 70, 75, 2, 1, 128, MaskKind.CausalLocalFromBottomRight, Window: 17) },
        { nameof(StockVariants.BlockDiagonalCausalLocal_None_F16_64), AttentionCase.Packed(new[] { 30, 0, 40 }, new[] { 20, 9, 40 }, 2, 2, 64, MaskKind.BlockDiagonalCausalLocal, window: 11) },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesFp64(string name, AttentionCase c)
    {
        var kernel = (AttentionKernel)typeof(StockVariants).GetMethod(name, System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)!.Invoke(null, null)!;
        kernel.Variant.DType.ShouldNotBe(DType.Float32);
        bool tensorCores = kernel is AttentionKernel<Half> half ? half.UsesTensorCores(context.Accelerator) : ((AttentionKernel<BFloat16>)kernel).UsesTensorCores(context.Accelerator);
        tensorCores.ShouldBeTrue();
        var errors = kernel.Variant.DType == DType.Float16
            ? AttentionCheck.Run<Half>(context, c, backward: false, kernel: kernel)
            : AttentionCheck.Run<BFloat16>(context, c, backward: false, kernel: kernel);
        // P is rounded to the dtype before P·V on the tensor cores: 8 unit roundoffs instead of the SIMT path's 4.
        errors.Max.ShouldBeLessThan(2 * AttentionCheck.Tolerance(kernel.Variant.DType), $"{name} {c}: {errors}");
    }
}
