using XFormers;
using XFormers.Dsl;

namespace XFormers.Samples.TinyGpt;

/// <summary>
/// The attention this sample trains with, declared with the DSL: the generator emits its forward and backward
/// kernels at build time. The seed model (d 128, 8 heads) has head dim 16 and computes in fp16; other shapes
/// fall back to the runtime's stock causal variants.
/// </summary>
internal static partial class Variants
{
    [Attention(Mask = MaskKind.Causal, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel CausalAttention();
}
