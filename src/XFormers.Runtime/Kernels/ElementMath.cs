using System.Runtime.CompilerServices;
using ILGPU;
using Half = ILGPU.Half;

namespace XFormers.Kernels
{
    /// <summary>
    /// Element conversions used by the generated kernels (and the host): every dtype is widened to float
    /// for arithmetic and narrowed once on store. The overloads let one template serve all three dtypes.
    /// </summary>
    public static class ElementMath
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float ToFloat(float value) => value;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float ToFloat(Half value) => (float)value;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float ToFloat(BFloat16 value) => Interop.IntAsFloat((uint)value.RawValue << 16);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float ToSingle(float value) => value;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Half ToHalf(float value) => (Half)value;

        /// <summary>float → bfloat16, round to nearest even; NaN is kept quiet.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static BFloat16 ToBFloat16(float value)
        {
            uint bits = Interop.FloatAsInt(value);
            if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u)
                return new BFloat16((ushort)((bits >> 16) | 0x0040u));
            uint roundingBias = 0x7FFFu + ((bits >> 16) & 1u);
            return new BFloat16((ushort)((bits + roundingBias) >> 16));
        }
    }
}
