using System;
using System.Runtime.CompilerServices;
using XFormers.Dsl;
using XFormers.Kernels;
using Half = ILGPU.Half;

namespace XFormers
{
    /// <summary>
    /// Host-side facts and conversions for the element types: float, <see cref="System.Half"/> (or
    /// <see cref="Half">ILGPU.Half</see>, the same 16 bits; the kernels take ILGPU's) and <see cref="BFloat16"/>.
    /// </summary>
    public static class ElementType
    {
        /// <summary>The DSL's <see cref="DType"/> of <typeparamref name="T"/>; throws for any other type.</summary>
        public static DType Of<T>()
            where T : unmanaged
        {
            if (typeof(T) == typeof(float))
                return DType.Float32;
            if (typeof(T) == typeof(Half) || typeof(T) == typeof(System.Half))
                return DType.Float16;
            if (typeof(T) == typeof(BFloat16))
                return DType.BFloat16;
            throw new NotSupportedException($"Element type {typeof(T).FullName} is not supported; {SupportedTypes}.");
        }

        /// <summary>Whether <typeparamref name="T"/> is one of the supported element types.</summary>
        public static bool IsSupported<T>()
            where T : unmanaged =>
            typeof(T) == typeof(float) || typeof(T) == typeof(Half) || typeof(T) == typeof(System.Half) || typeof(T) == typeof(BFloat16);

        /// <summary>The supported element types, for error messages.</summary>
        internal const string SupportedTypes = "attention takes float, System.Half (or ILGPU.Half) and XFormers.BFloat16";

        /// <summary>Bytes per element.</summary>
        public static int SizeOf(DType dtype) => dtype == DType.Float32 ? 4 : 2;

        /// <summary>Exact widening to float.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float ToFloat<T>(T value)
            where T : unmanaged
        {
            if (typeof(T) == typeof(float))
                return Unsafe.As<T, float>(ref value);
            if (typeof(T) == typeof(Half) || typeof(T) == typeof(System.Half))
                return (float)Unsafe.As<T, Half>(ref value);
            if (typeof(T) == typeof(BFloat16))
                return ElementMath.ToFloat(Unsafe.As<T, BFloat16>(ref value));
            throw new NotSupportedException($"Element type {typeof(T).FullName} is not supported; {SupportedTypes}.");
        }

        /// <summary>Rounds a float to <typeparamref name="T"/> (round to nearest even).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static T FromFloat<T>(float value)
            where T : unmanaged
        {
            if (typeof(T) == typeof(float))
                return Unsafe.As<float, T>(ref value);
            if (typeof(T) == typeof(Half) || typeof(T) == typeof(System.Half))
            {
                var half = ElementMath.ToHalf(value);
                return Unsafe.As<Half, T>(ref half);
            }
            if (typeof(T) == typeof(BFloat16))
            {
                var bf = ElementMath.ToBFloat16(value);
                return Unsafe.As<BFloat16, T>(ref bf);
            }
            throw new NotSupportedException($"Element type {typeof(T).FullName} is not supported; {SupportedTypes}.");
        }

        /// <summary>Unit roundoff (half the spacing of numbers near 1) of a dtype: 2^-24, 2^-11, 2^-8.</summary>
        public static double UnitRoundoff(DType dtype) => dtype switch
        {
            DType.Float32 => Math.Pow(2, -24),
            DType.Float16 => Math.Pow(2, -11),
            _ => Math.Pow(2, -8),
        };
    }
}
