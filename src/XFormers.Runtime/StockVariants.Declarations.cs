using XFormers.Dsl;

namespace XFormers;

// Written from the table in StockVariants.cs by StockVariantTableTests: change the table, not this file.
internal static partial class StockVariants
{
    // Float32: None, Causal, CausalFromBottomRight, BlockDiagonal, BlockDiagonalCausal × None, Tensor, Alibi × head dim 16, 32, 64, 128
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel None_None_F32_16();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel None_None_F32_32();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel None_None_F32_64();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel None_None_F32_128();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel None_Tensor_F32_16();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel None_Tensor_F32_32();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel None_Tensor_F32_64();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel None_Tensor_F32_128();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel None_Alibi_F32_16();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel None_Alibi_F32_32();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel None_Alibi_F32_64();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel None_Alibi_F32_128();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_None_F32_16();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_None_F32_32();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_None_F32_64();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_None_F32_128();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_Tensor_F32_16();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_Tensor_F32_32();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_Tensor_F32_64();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_Tensor_F32_128();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_Alibi_F32_16();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_Alibi_F32_32();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_Alibi_F32_64();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel Causal_Alibi_F32_128();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_None_F32_16();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_None_F32_32();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_None_F32_64();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_None_F32_128();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_F32_16();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_F32_32();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_F32_64();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_F32_128();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_F32_16();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_F32_32();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_F32_64();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_F32_128();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_None_F32_16();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_None_F32_32();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_None_F32_64();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_None_F32_128();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_F32_16();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_F32_32();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_F32_64();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_F32_128();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_F32_16();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_F32_32();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_F32_64();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_F32_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_F32_16();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_F32_32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_F32_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_F32_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_F32_16();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_F32_32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_F32_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_F32_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_F32_16();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_F32_32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_F32_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float32)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_F32_128();

    // Float16: None, Causal, CausalFromBottomRight, BlockDiagonal, BlockDiagonalCausal × None, Tensor, Alibi × head dim 16, 32, 64, 128
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel None_None_F16_16();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel None_None_F16_32();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel None_None_F16_64();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel None_None_F16_128();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel None_Tensor_F16_16();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel None_Tensor_F16_32();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel None_Tensor_F16_64();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel None_Tensor_F16_128();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel None_Alibi_F16_16();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel None_Alibi_F16_32();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel None_Alibi_F16_64();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel None_Alibi_F16_128();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_None_F16_16();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_None_F16_32();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_None_F16_64();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_None_F16_128();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_Tensor_F16_16();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_Tensor_F16_32();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_Tensor_F16_64();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_Tensor_F16_128();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_Alibi_F16_16();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_Alibi_F16_32();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_Alibi_F16_64();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_Alibi_F16_128();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_None_F16_16();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_None_F16_32();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_None_F16_64();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_None_F16_128();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_F16_16();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_F16_32();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_F16_64();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_F16_128();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_F16_16();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_F16_32();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_F16_64();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_F16_128();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_None_F16_16();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_None_F16_32();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_None_F16_64();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_None_F16_128();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_F16_16();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_F16_32();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_F16_64();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_F16_128();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_F16_16();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_F16_32();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_F16_64();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_F16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_F16_16();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_F16_32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_F16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_F16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_F16_16();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_F16_32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_F16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_F16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_F16_16();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_F16_32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_F16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_F16_128();

    // BFloat16: None, Causal, CausalFromBottomRight, BlockDiagonal, BlockDiagonalCausal × None, Tensor, Alibi × head dim 16, 32, 64, 128
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_None_BF16_16();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_None_BF16_32();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_None_BF16_64();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_None_BF16_128();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_Tensor_BF16_16();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_Tensor_BF16_32();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_Tensor_BF16_64();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_Tensor_BF16_128();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_Alibi_BF16_16();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_Alibi_BF16_32();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_Alibi_BF16_64();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_Alibi_BF16_128();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_None_BF16_16();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_None_BF16_32();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_None_BF16_64();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_None_BF16_128();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_Tensor_BF16_16();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_Tensor_BF16_32();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_Tensor_BF16_64();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_Tensor_BF16_128();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_Alibi_BF16_16();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_Alibi_BF16_32();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_Alibi_BF16_64();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_Alibi_BF16_128();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_None_BF16_16();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_None_BF16_32();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_None_BF16_64();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_None_BF16_128();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_BF16_16();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_BF16_32();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_BF16_64();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_Tensor_BF16_128();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_BF16_16();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_BF16_32();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_BF16_64();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalFromBottomRight_Alibi_BF16_128();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_None_BF16_16();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_None_BF16_32();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_None_BF16_64();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_None_BF16_128();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_BF16_16();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_BF16_32();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_BF16_64();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_Tensor_BF16_128();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_BF16_16();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_BF16_32();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_BF16_64();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonal_Alibi_BF16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_BF16_16();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_BF16_32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_BF16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_None_BF16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_BF16_16();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_BF16_32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_BF16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Tensor_BF16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 16, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_BF16_16();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_BF16_32();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_BF16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausal_Alibi_BF16_128();

    // Float16: None, Causal × None × head dim 256
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 256, DType = DType.Float16)]
    internal static partial AttentionKernel None_None_F16_256();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 256, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_None_F16_256();

    // BFloat16: None, Causal × None × head dim 256
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 256, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_None_BF16_256();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 256, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_None_BF16_256();

    // Float16: CausalLocalFromBottomRight, BlockDiagonalCausalFromBottomRight, BlockDiagonalCausalLocal, BlockDiagonalCausalLocalFromBottomRight × None × head dim 64, 128
    [Attention(Mask = MaskKind.CausalLocalFromBottomRight, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel CausalLocalFromBottomRight_None_F16_64();

    [Attention(Mask = MaskKind.CausalLocalFromBottomRight, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel CausalLocalFromBottomRight_None_F16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausalFromBottomRight, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausalFromBottomRight_None_F16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausalFromBottomRight, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausalFromBottomRight_None_F16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausalLocal_None_F16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausalLocal_None_F16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocalFromBottomRight, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausalLocalFromBottomRight_None_F16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocalFromBottomRight, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    internal static partial AttentionKernel BlockDiagonalCausalLocalFromBottomRight_None_F16_128();

    // BFloat16: CausalLocalFromBottomRight, BlockDiagonalCausalFromBottomRight, BlockDiagonalCausalLocal, BlockDiagonalCausalLocalFromBottomRight × None × head dim 64, 128
    [Attention(Mask = MaskKind.CausalLocalFromBottomRight, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalLocalFromBottomRight_None_BF16_64();

    [Attention(Mask = MaskKind.CausalLocalFromBottomRight, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel CausalLocalFromBottomRight_None_BF16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausalFromBottomRight, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausalFromBottomRight_None_BF16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausalFromBottomRight, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausalFromBottomRight_None_BF16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocal, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausalLocal_None_BF16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocal, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausalLocal_None_BF16_128();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocalFromBottomRight, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausalLocalFromBottomRight_None_BF16_64();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocalFromBottomRight, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16)]
    internal static partial AttentionKernel BlockDiagonalCausalLocalFromBottomRight_None_BF16_128();

    // Float16: None, Causal × None × head dim 80, 96
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 80, DType = DType.Float16)]
    internal static partial AttentionKernel None_None_F16_80();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 96, DType = DType.Float16)]
    internal static partial AttentionKernel None_None_F16_96();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 80, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_None_F16_80();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 96, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_None_F16_96();

    // BFloat16: None, Causal × None × head dim 80, 96
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 80, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_None_BF16_80();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 96, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_None_BF16_96();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 80, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_None_BF16_80();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 96, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_None_BF16_96();

    // Float32: None, Causal × None × head dim 64, 128, with dropout
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float32, Dropout = true)]
    internal static partial AttentionKernel None_None_F32_64_Dropout();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float32, Dropout = true)]
    internal static partial AttentionKernel None_None_F32_128_Dropout();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float32, Dropout = true)]
    internal static partial AttentionKernel Causal_None_F32_64_Dropout();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float32, Dropout = true)]
    internal static partial AttentionKernel Causal_None_F32_128_Dropout();

    // Float16: None, Causal × None × head dim 64, 128, with dropout
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16, Dropout = true)]
    internal static partial AttentionKernel None_None_F16_64_Dropout();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16, Dropout = true)]
    internal static partial AttentionKernel None_None_F16_128_Dropout();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16, Dropout = true)]
    internal static partial AttentionKernel Causal_None_F16_64_Dropout();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16, Dropout = true)]
    internal static partial AttentionKernel Causal_None_F16_128_Dropout();

    // BFloat16: None, Causal × None × head dim 64, 128, with dropout
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16, Dropout = true)]
    internal static partial AttentionKernel None_None_BF16_64_Dropout();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16, Dropout = true)]
    internal static partial AttentionKernel None_None_BF16_128_Dropout();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 64, DType = DType.BFloat16, Dropout = true)]
    internal static partial AttentionKernel Causal_None_BF16_64_Dropout();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 128, DType = DType.BFloat16, Dropout = true)]
    internal static partial AttentionKernel Causal_None_BF16_128_Dropout();
}
