using XFormers.Dsl;

namespace XFormers
{
    /// <summary>
    /// The compile-time constants of one generated attention variant, as declared with
    /// <see cref="AttentionAttribute"/> (after the generator filled in defaults).
    /// </summary>
    /// <param name="Name">Declaring type and method, e.g. <c>MyApp.Kernels.CausalHalf64</c>.</param>
    /// <param name="GroupSize">Query heads per KV head, or 0 when read from the tensors.</param>
    /// <param name="BackwardBlockM">Query rows per shared-memory tile in the dK/dV pass.</param>
    public sealed record AttentionVariant(
        string Name,
        MaskKind Mask,
        BiasKind Bias,
        bool BiasGradient,
        int HeadDim,
        int Heads,
        int KvHeads,
        int GroupSize,
        int BlockM,
        int BlockN,
        int BackwardBlockM,
        DType DType,
        bool Backward,
        string Summary)
    {
        /// <summary>
        /// Bytes of shared memory a group of the forward's portable kernel needs (its K and V tiles), as the generator
        /// computed them; <see cref="AttentionKernel.CanRunOn"/> compares them with the device's.
        /// </summary>
        public int ForwardSharedBytes { get; init; }

        /// <summary>Whether the grouping is fixed at build time.</summary>
        public bool HasFixedGrouping => GroupSize > 0;

        public override string ToString() => $"{Name} ({Summary})";
    }
}
