using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.IR.Intrinsics;
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

        /// <summary>
        /// float → fp16, round to nearest even. PTX's cvt.rn does it on CUDA; elsewhere the rounding is done in integer
        /// arithmetic, because ILGPU.Half's own cast truncates on the host.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static Half ToHalf(float value) => ILGPU.Runtime.Cuda.CudaAsm.IsSupported ? ToHalfPtx(value) : ToHalfCpu(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Half ToHalfPtx(float value) => (Half)value;

        private static Half ToHalfCpu(float value) => (Half)HalfBitsToFloat(RoundToHalfBits(value));

        /// <summary>
        /// The float with the value of these binary16 bits. Casting that exact value to Half is exact both in
        /// ILGPU's host conversion and in PTX, which is how the rounding above reaches a Half on either side.
        /// </summary>
        public static float HalfBitsToFloat(ushort half)
        {
            uint sign = (uint)(half & 0x8000) << 16;
            uint exponent = (uint)(half >> 10) & 0x1Fu;
            uint mantissa = half & 0x3FFu;
            if (exponent == 0)
            {
                float magnitude = mantissa * 5.9604644775390625e-8f; // 2^-24, exact
                return sign != 0 ? -magnitude : magnitude;
            }
            uint bits = exponent == 0x1F ? 0x7F80_0000u | (mantissa << 13) : ((exponent + 112u) << 23) | (mantissa << 13);
            return Interop.IntAsFloat(sign | bits);
        }

        /// <summary>IEEE binary16 bits of <paramref name="value"/>, round to nearest even; overflow to ±inf, NaN stays NaN.</summary>
        public static ushort RoundToHalfBits(float value)
        {
            uint bits = Interop.FloatAsInt(value);
            uint sign = (bits >> 16) & 0x8000u;
            uint abs = bits & 0x7FFF_FFFFu;
            if (abs >= 0x7F80_0000u)
                return (ushort)(sign | (abs > 0x7F80_0000u ? 0x7E00u : 0x7C00u));
            if (abs >= 0x477F_F000u)
                return (ushort)(sign | 0x7C00u);
            if (abs >= 0x3880_0000u)
            {
                // Normal: rebias the exponent (127 → 15) and round the 13 dropped mantissa bits.
                uint h = abs - 0x3800_0000u;
                return (ushort)(sign | ((h + 0x0FFFu + ((h >> 13) & 1u)) >> 13));
            }
            if (abs < 0x3300_0000u)
                return (ushort)sign;
            // Subnormal: the significand in units of 2^-24, rounded to nearest even.
            int shift = 126 - (int)(abs >> 23);
            uint significand = (abs & 0x7F_FFFFu) | 0x80_0000u;
            uint q = significand >> shift;
            uint rest = significand & ((1u << shift) - 1u);
            uint half = 1u << (shift - 1);
            if (rest > half || (rest == half && (q & 1u) != 0))
                q++;
            return (ushort)(sign | q);
        }

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
