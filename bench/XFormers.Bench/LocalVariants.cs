using XFormers.Dsl;

namespace XFormers.Bench
{
    /// <summary>
    /// Local and bottom-right block-diagonal masks with the biases the stock set does not pair them with, for the device
    /// conformance of the sm_90a kernels' band code beside ALiBi's positions and a tensor bias with its gradient.
    /// </summary>
    internal static partial class LocalVariants
    {
        [Attention(Mask = MaskKind.BlockDiagonalCausalLocal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.BFloat16)]
        internal static partial AttentionKernel BlockDiagonalCausalLocal_Alibi_BF16_64();

        [Attention(Mask = MaskKind.BlockDiagonalCausalLocalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.Float16)]
        internal static partial AttentionKernel BlockDiagonalCausalLocalFromBottomRight_Alibi_F16_128();

        [Attention(Mask = MaskKind.CausalLocalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 128, DType = DType.Float16)]
        internal static partial AttentionKernel CausalLocalFromBottomRight_Tensor_F16_128();

        [Attention(Mask = MaskKind.BlockDiagonalCausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 64, DType = DType.BFloat16)]
        internal static partial AttentionKernel BlockDiagonalCausalFromBottomRight_Tensor_BF16_64();
    }
}
