using XFormers.Dsl;

namespace XFormers;

/// <summary>
/// The runtime's stock variants, declared with its own DSL: every mask × bias kind, for float32, float16 and
/// bfloat16, at head dims 16, 32, 64 and 128 (and 256 for 16-bit inputs without a mask or causal), with backward kernels (and dBias for tensor biases). The
/// grouping is read from the tensors at run time, so each also serves GQA and MQA. The generator emits
/// their kernels and registers them at load; an application's own declarations register beside them.
/// </summary>
internal static partial class StockVariants
{
    // Float32
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

    // Float16
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

    // BFloat16
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

    // Head dim 256, 16-bit, no mask and causal: the sm_90a forward on Hopper (64-key tiles), the SIMT kernels elsewhere.
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 256, DType = DType.Float16)]
    internal static partial AttentionKernel None_None_F16_256();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 256, DType = DType.Float16)]
    internal static partial AttentionKernel Causal_None_F16_256();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 256, DType = DType.BFloat16)]
    internal static partial AttentionKernel None_None_BF16_256();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 256, DType = DType.BFloat16)]
    internal static partial AttentionKernel Causal_None_BF16_256();
}
