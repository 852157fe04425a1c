namespace XFormers.Dsl
{
    /// <summary>Element type of the attention tensors. Arithmetic is float32 inside the kernels.</summary>
    // Linked into the generator too (its parser reads declarations as these enums), where it is internal.
#if XFORMERS_GENERATOR
    internal
#else
    public
#endif
    enum DType
    {
        /// <summary>IEEE binary32.</summary>
        Float32 = 0,

        /// <summary>IEEE binary16 (<c>ILGPU.Half</c>).</summary>
        Float16 = 1,

        /// <summary>bfloat16, stored as 16 bits; float32 to bfloat16 rounds to nearest even.</summary>
        BFloat16 = 2,
    }
}
