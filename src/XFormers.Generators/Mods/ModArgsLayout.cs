using XFormers.Generators.Models;

namespace XFormers.Generators.Mods
{
    /// <summary>What a field of the mods' argument struct becomes in the kernels (see XFormers.Kernels.ModArgs).</summary>
    internal enum ModFieldKind
    {
        /// <summary>An <c>int</c> field: int slot.</summary>
        Int,
        /// <summary>A <c>bool</c> field: int slot, 0 or 1.</summary>
        Bool,
        /// <summary>A <c>float</c> field: float slot.</summary>
        Float,
        /// <summary>A <c>Tensor&lt;int&gt;</c> field: int table.</summary>
        IntTable,
        /// <summary>A <c>Tensor&lt;float&gt;</c> field: float table.</summary>
        FloatTable,
    }

    /// <summary>
    /// One field of the argument struct and its slot. Every field gets a slot, in declaration order and per kind
    /// (int and bool fields share the int slots); only the fields a mod reads are bound at run time.
    /// </summary>
    /// <param name="Name">The field's name (as metadata spells it, without <c>@</c>).</param>
    /// <param name="Slot">Its slot among the int scalars, float scalars, int tables or float tables.</param>
    /// <param name="Rank">The number of indices a table is read with (1 to 3), or 0 for a scalar or a table no mod reads.</param>
    /// <param name="Read">Whether a mod reads it (only those are bound).</param>
    internal sealed record ModField(string Name, ModFieldKind Kind, int Slot, int Rank, bool Read)
    {
        public bool IsTable => Kind is ModFieldKind.IntTable or ModFieldKind.FloatTable;
    }

    /// <summary>
    /// The byte layout of the sm_90a kernels' mod-argument parameter (<c>.param .align 8 .b8 NAME[320]</c>), the same
    /// slots as XFormers.Kernels.ModArgs: what the runtime writes and <see cref="ModPtxWriter"/> reads.
    /// </summary>
    internal static class ModParamLayout
    {
        /// <summary>Int slot k (s32) at 4k.</summary>
        public const int Ints = 0;
        /// <summary>Float slot k (f32) at 32 + 4k.</summary>
        public const int Floats = 32;
        /// <summary>Int table k's device pointer (u64) at 64 + 8k.</summary>
        public const int IntTablePointers = 64;
        /// <summary>Float table k's device pointer (u64) at 96 + 8k.</summary>
        public const int FloatTablePointers = 96;
        /// <summary>Int table k's length in elements (s64) at 128 + 8k.</summary>
        public const int IntTableLengths = 128;
        /// <summary>Float table k's length in elements (s64) at 160 + 8k.</summary>
        public const int FloatTableLengths = 160;
        /// <summary>Int table k's Stride0 (s64) at 192 + 16k, its Stride1 at 200 + 16k.</summary>
        public const int IntTableStrides = 192;
        /// <summary>Float table k's Stride0 (s64) at 256 + 16k, its Stride1 at 264 + 16k.</summary>
        public const int FloatTableStrides = 256;
        /// <summary>The parameter's size in bytes.</summary>
        public const int Bytes = 320;
        /// <summary>The parameter's alignment.</summary>
        public const int Alignment = 8;

        public static int Int(int slot) => Ints + 4 * slot;
        public static int Float(int slot) => Floats + 4 * slot;
        public static int TablePointer(bool isFloat, int slot) => (isFloat ? FloatTablePointers : IntTablePointers) + 8 * slot;
        public static int TableLength(bool isFloat, int slot) => (isFloat ? FloatTableLengths : IntTableLengths) + 8 * slot;
        public static int TableStride(bool isFloat, int slot, int dim) => (isFloat ? FloatTableStrides : IntTableStrides) + 16 * slot + 8 * dim;
    }

    /// <summary>The kernels' limits (the same as XFormers.Kernels.ModArgs.Scalars and .Tables).</summary>
    internal static class ModLimits
    {
        public const int Scalars = 8, Tables = 4, MaxRank = 3;
    }
}
