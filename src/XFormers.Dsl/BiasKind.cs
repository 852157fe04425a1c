namespace XFormers.Dsl
{
    /// <summary>The additive bias applied to the scaled scores before the softmax.</summary>
    // Linked into the generator too (its parser reads declarations as these enums), where it is internal.
#if XFORMERS_GENERATOR
    internal
#else
    public
#endif
    enum BiasKind
    {
        /// <summary>No bias.</summary>
        None = 0,

        /// <summary>
        /// A tensor [B, Hq, Mq, Mkv] (dimensions of size 1 broadcast) that may hold -infinity;
        /// its gradient is written when the variant sets <see cref="AttentionAttribute.BiasGradient"/>.
        /// </summary>
        Tensor = 1,

        /// <summary>
        /// ALiBi (Press et al. 2022): slope[h] * (j - i), computed inside the kernel from per-head slopes.
        /// No Mq x Mkv tensor ever exists.
        /// </summary>
        Alibi = 2,
    }
}
