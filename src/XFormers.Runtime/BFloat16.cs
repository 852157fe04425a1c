using System;
using System.Globalization;
using System.Runtime.InteropServices;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>
    /// bfloat16: the upper 16 bits of an IEEE binary32 (8 exponent bits, 7 mantissa bits). Conversion from
    /// float rounds to nearest, ties to even; NaN stays NaN. Usable on the host and inside ILGPU kernels.
    /// </summary>
    [StructLayout(LayoutKind.Sequential, Size = 2)]
    public readonly struct BFloat16 : IEquatable<BFloat16>, IFormattable
    {
        /// <summary>The stored 16 bits.</summary>
        public readonly ushort RawValue;

        /// <summary>Wraps raw bits.</summary>
        public BFloat16(ushort rawValue) => RawValue = rawValue;

        /// <summary>Rounds a float to the nearest bfloat16 (ties to even).</summary>
        public static BFloat16 FromFloat(float value) => ElementMath.ToBFloat16(value);

        /// <summary>The exact float value.</summary>
        public float ToFloat() => ElementMath.ToFloat(this);

        public static explicit operator BFloat16(float value) => FromFloat(value);

        public static explicit operator float(BFloat16 value) => value.ToFloat();

        public bool Equals(BFloat16 other) => RawValue == other.RawValue;

        public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);

        public override int GetHashCode() => RawValue;

        public override string ToString() => ToFloat().ToString(CultureInfo.InvariantCulture);

        public string ToString(string? format, IFormatProvider? formatProvider) => ToFloat().ToString(format, formatProvider);

        public static bool operator ==(BFloat16 left, BFloat16 right) => left.Equals(right);

        public static bool operator !=(BFloat16 left, BFloat16 right) => !left.Equals(right);
    }
}
