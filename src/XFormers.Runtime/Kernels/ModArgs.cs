using System.Runtime.CompilerServices;
using ILGPU;

namespace XFormers.Kernels
{
    /// <summary>
    /// The run-time arguments of a variant's score and mask mods, as the kernels read them: the fields of the user's
    /// <c>TArgs</c> struct, each assigned a slot by the generator at build time. Scalars: <c>int</c> and <c>bool</c> fields
    /// take <c>Int0…Int7</c> (a bool as 0 or 1), <c>float</c> fields <c>Float0…Float7</c>. Tables: <c>Tensor&lt;int&gt;</c>
    /// fields take <c>IntTable0…3</c>, <c>Tensor&lt;float&gt;</c> fields <c>FloatTable0…3</c>, each of rank 1 to 3, dense and
    /// row-major; element (i0, i1, i2) is at <c>i0 · Stride0 + i1 · Stride1 + i2</c> (the strides of the dims a rank
    /// lacks are unused). A read outside a table gives 0 (int) or NaN (float), never a fault.
    /// </summary>
    public struct ModArgs
    {
        public int Int0, Int1, Int2, Int3, Int4, Int5, Int6, Int7;
        public float Float0, Float1, Float2, Float3, Float4, Float5, Float6, Float7;

        public ArrayView<int> IntTable0, IntTable1, IntTable2, IntTable3;
        public long IntTable0Stride0, IntTable0Stride1;
        public long IntTable1Stride0, IntTable1Stride1;
        public long IntTable2Stride0, IntTable2Stride1;
        public long IntTable3Stride0, IntTable3Stride1;

        public ArrayView<float> FloatTable0, FloatTable1, FloatTable2, FloatTable3;
        public long FloatTable0Stride0, FloatTable0Stride1;
        public long FloatTable1Stride0, FloatTable1Stride1;
        public long FloatTable2Stride0, FloatTable2Stride1;
        public long FloatTable3Stride0, FloatTable3Stride1;

        /// <summary>How many slots of each kind there are (the generator's limit is the same).</summary>
        public const int Scalars = 8, Tables = 4;

        /// <summary>Element <paramref name="index"/> of an int table, or 0 outside it.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static int Read(ArrayView<int> table, long index) =>
            (ulong)index < (ulong)table.Length ? table[index] : 0;

        /// <summary>Element <paramref name="index"/> of a float table, or NaN outside it.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Read(ArrayView<float> table, long index) =>
            (ulong)index < (ulong)table.Length ? table[index] : float.NaN;
    }
}
