using System.Runtime.CompilerServices;
using ILGPU;
using XFormers.Kernels;
using Half = ILGPU.Half;

namespace XFormers.Training
{
    /// <summary>
    /// Widening to float and narrowing back for one element type, as a struct type parameter so a kernel
    /// written once is specialized per dtype at compile time (ILGPU inlines <c>default(TConvert).ToFloat(x)</c>).
    /// </summary>
    public interface IElementConvert<T>
        where T : unmanaged
    {
        float ToFloat(T value);

        T FromFloat(float value);
    }

    public struct FloatConvert : IElementConvert<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float ToFloat(float value) => value;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float FromFloat(float value) => value;
    }

    /// <summary>
    /// fp16 with round-to-nearest-even narrowing done in integer arithmetic, so the host loops and the GPU
    /// round identically (ILGPU.Half's host cast truncates, while PTX's cvt.rn rounds to nearest: a resumed
    /// run would otherwise not be bit-identical).
    /// </summary>
    public struct HalfConvert : IElementConvert<Half>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float ToFloat(Half value) => (float)value;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Half FromFloat(float value) => (Half)HalfBitsToFloat(RoundToHalfBits(value));

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
    }

    public struct BFloat16Convert : IElementConvert<BFloat16>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float ToFloat(BFloat16 value) => ElementMath.ToFloat(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public BFloat16 FromFloat(float value) => ElementMath.ToBFloat16(value);
    }
}
