using System.Collections.Generic;
using XFormers.Dsl;

namespace XFormers;

/// <summary>
/// The runtime's stock variants, declared with its own DSL as products of masks × biases × dtypes × head dims. A
/// tensor bias always comes with its gradient (dBias). The grouping is read from the tensors at run time, so each
/// variant also serves GQA and MQA. The generator emits their kernels and registers them at load; an application's
/// own declarations register beside them.
/// </summary>
/// <remarks>
/// The generator reads <c>[Attention]</c> methods, so the declarations themselves are written out from
/// <see cref="Table"/> into <c>StockVariants.Declarations.cs</c>, one per variant named
/// <c>{Mask}_{Bias}_{F32|F16|BF16}_{HeadDim}</c> (with <c>_Dropout</c> for a row declared with dropout). After a change to the table, write them anew with
/// <c>XFORMERS_WRITE_STOCK_VARIANTS=1 dotnet test XFormers.slnx -c Release --filter StockVariantTableTests</c> and
/// build again; the test fails while the file and the table differ.
/// </remarks>
internal static partial class StockVariants
{
    private static readonly MaskKind[] AllMasks =
        { MaskKind.None, MaskKind.Causal, MaskKind.CausalFromBottomRight, MaskKind.BlockDiagonal, MaskKind.BlockDiagonalCausal };

    private static readonly MaskKind[] LocalMasks =
    {
        MaskKind.CausalLocalFromBottomRight, MaskKind.BlockDiagonalCausalFromBottomRight, MaskKind.BlockDiagonalCausalLocal,
        MaskKind.BlockDiagonalCausalLocalFromBottomRight,
    };

    private static readonly BiasKind[] AllBiases = { BiasKind.None, BiasKind.Tensor, BiasKind.Alibi };

    /// <summary>The stock set, one product a row; declarations follow it row by row, then by dtype, mask, bias, head dim.</summary>
    internal static readonly StockProduct[] Table =
    {
        new(AllMasks, AllBiases, new[] { DType.Float32, DType.Float16, DType.BFloat16 }, new[] { 16, 32, 64, 128 }),
        // 16-bit, no mask and causal: the sm_90a forward on Hopper (64-key tiles), the mma.sync kernels elsewhere.
        new(new[] { MaskKind.None, MaskKind.Causal }, new[] { BiasKind.None }, new[] { DType.Float16, DType.BFloat16 }, new[] { 256 }),
        // 16-bit local (sliding-window) masks and the bottom-right block-diagonal one: the window is a run-time value.
        new(LocalMasks, new[] { BiasKind.None }, new[] { DType.Float16, DType.BFloat16 }, new[] { 64, 128 }),
        // 16-bit head dims between the powers of two, no mask and causal: the mma.sync kernels (sm_90a takes multiples of 64).
        new(new[] { MaskKind.None, MaskKind.Causal }, new[] { BiasKind.None }, new[] { DType.Float16, DType.BFloat16 }, new[] { 80, 96 }),
        // Attention dropout (p and the seed at run time), no mask and causal: the SIMT kernels in fp32, mma.sync in 16-bit.
        new(new[] { MaskKind.None, MaskKind.Causal }, new[] { BiasKind.None }, new[] { DType.Float32, DType.Float16, DType.BFloat16 }, new[] { 64, 128 }, Dropout: true),
    };

    /// <summary>Every stock variant, in declaration order.</summary>
    internal static IEnumerable<StockVariant> All()
    {
        foreach (var product in Table)
            foreach (var variant in product.Variants())
                yield return variant;
    }
}

/// <summary>One row of the stock table: every combination of its lists, declared with dropout or without.</summary>
internal sealed record StockProduct(MaskKind[] Masks, BiasKind[] Biases, DType[] DTypes, int[] HeadDims, bool Dropout = false)
{
    public IEnumerable<StockVariant> Variants()
    {
        foreach (var dtype in DTypes)
            foreach (var mask in Masks)
                foreach (var bias in Biases)
                    foreach (int headDim in HeadDims)
                        yield return new StockVariant(mask, bias, dtype, headDim, Dropout);
    }
}

/// <summary>One stock variant, as its declaration names it.</summary>
internal readonly record struct StockVariant(MaskKind Mask, BiasKind Bias, DType DType, int HeadDim, bool Dropout = false)
{
    public bool BiasGradient => Bias == BiasKind.Tensor;

    public string Name => $"{Mask}_{Bias}_{DTypeShort}_{HeadDim}" + (Dropout ? "_Dropout" : "");

    private string DTypeShort => DType switch
    {
        DType.Float32 => "F32",
        DType.Float16 => "F16",
        _ => "BF16",
    };
}
