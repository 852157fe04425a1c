using System;
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

        /// <summary>The score mod's method name (<see cref="AttentionAttribute.ScoreMod"/>), or null.</summary>
        public string? ScoreMod { get; init; }

        /// <summary>The mask mod's method name (<see cref="AttentionAttribute.MaskMod"/>), or null.</summary>
        public string? MaskMod { get; init; }

        /// <summary>The mods' run-time argument struct (their trailing <c>in TArgs args</c>), or null when they take none.</summary>
        public Type? ModArgsType { get; init; }

        /// <summary>Whether the mask mod reads the batch index (else one block mask serves every batch).</summary>
        public bool MaskReadsBatch { get; init; }

        /// <summary>Whether the mask mod reads the head index (else one block mask serves every head).</summary>
        public bool MaskReadsHead { get; init; }

        /// <summary>
        /// Whether the variant has a score or mask mod: it computes something other than its mask and bias say, so the
        /// registry never picks it for a plain call; pass it as the kernel.
        /// </summary>
        public bool HasMods => ScoreMod is not null || MaskMod is not null;

        /// <summary>
        /// Whether the kernels apply attention dropout (<see cref="AttentionAttribute.Dropout"/>): only such a variant takes
        /// p &gt; 0; with p = 0 it computes what a variant without dropout does.
        /// </summary>
        public bool Dropout { get; init; }

        /// <summary>Whether the grouping is fixed at build time.</summary>
        public bool HasFixedGrouping => GroupSize > 0;

        public override string ToString() => $"{Name} ({Summary})";
    }
}
