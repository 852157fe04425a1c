using System.Runtime.CompilerServices;
using ILGPU.Runtime.Cuda;

namespace XFormers.Kernels
{
    /// <summary>
    /// exp and log for the kernels. On CUDA they are one PTX instruction each (ex2.approx / lg2.approx on a
    /// rescaled argument, as FlashAttention does; about 2 ulp). On the CPU accelerator they are
    /// <see cref="System.MathF"/>'s. ILGPU compiles both branches before it folds <see cref="CudaAsm.IsSupported"/>,
    /// so CUDA contexts enable ILGPU.Algorithms, which gives the (dead) MathF branch a PTX implementation.
    /// </summary>
    public static class KernelMath
    {
        public const float Log2E = 1.44269504088896340736f;
        public const float Ln2 = 0.693147180559945309417f;

        /// <summary>e^x; exp(−∞) = 0.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Exp(float x)
        {
            if (CudaAsm.IsSupported)
            {
                var result = default(Output<float>);
                Input<float> scaled = x * Log2E;
                CudaAsm.EmitRef("ex2.approx.ftz.f32 %0, %1;", ref result, ref scaled);
                return result.Value;
            }
            return System.MathF.Exp(x);
        }

        /// <summary>
        /// max(a, b) that returns NaN when either is NaN, on every backend. IEEE maxNum (PTX <c>max.f32</c>, what
        /// <see cref="System.Math.Max(float, float)"/> becomes on CUDA) returns the other operand, so a NaN score would
        /// vanish from a row's maximum and the row would come out finite.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float MaxNaN(float a, float b) => a > b || float.IsNaN(a) ? a : b;

        /// <summary>ln x, for x &gt; 0.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Log(float x)
        {
            if (CudaAsm.IsSupported)
            {
                var result = default(Output<float>);
                Input<float> input = x;
                CudaAsm.EmitRef("lg2.approx.ftz.f32 %0, %1;", ref result, ref input);
                return result.Value * Ln2;
            }
            return System.MathF.Log(x);
        }

        // The functions score and mask mods may call (docs/DSL.md), as the generated mods print them.

        /// <summary>min(a, b) that returns NaN when either is NaN (C#'s MathF.Min), on every backend.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float MinNaN(float a, float b) => a < b || float.IsNaN(a) ? a : b;

        /// <summary>
        /// tanh x. On CUDA: 1 − 2 / (e^(2|x|) + 1) with the sign of x, from ex2.approx (a few ulp), and the odd Taylor series below
        /// |x| = 2^-6 where that form would cancel; on the CPU, <see cref="System.MathF.Tanh"/>.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Tanh(float x)
        {
            if (CudaAsm.IsSupported)
            {
                float ax = Abs(x);
                if (ax < 0.015625f)
                {
                    float x2 = x * x;
                    return x * (1f - x2 * (0.333333343f - x2 * 0.13333334f));
                }
                float t = 1f - 2f / (Exp(2f * ax) + 1f);
                return x < 0f ? -t : t;
            }
            return System.MathF.Tanh(x);
        }

        /// <summary>√x (sqrt.rn on CUDA: correctly rounded).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Sqrt(float x)
        {
            if (CudaAsm.IsSupported)
            {
                var result = default(Output<float>);
                Input<float> input = x;
                CudaAsm.EmitRef("sqrt.rn.f32 %0, %1;", ref result, ref input);
                return result.Value;
            }
            return System.MathF.Sqrt(x);
        }

        /// <summary>|x|.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Abs(float x)
        {
            if (CudaAsm.IsSupported)
            {
                var result = default(Output<float>);
                Input<float> input = x;
                CudaAsm.EmitRef("abs.f32 %0, %1;", ref result, ref input);
                return result.Value;
            }
            return System.MathF.Abs(x);
        }

        /// <summary>The largest integer ≤ x.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Floor(float x)
        {
            if (CudaAsm.IsSupported)
            {
                var result = default(Output<float>);
                Input<float> input = x;
                CudaAsm.EmitRef("cvt.rmi.f32.f32 %0, %1;", ref result, ref input);
                return result.Value;
            }
            return System.MathF.Floor(x);
        }

        /// <summary>The smallest integer ≥ x.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Ceiling(float x)
        {
            if (CudaAsm.IsSupported)
            {
                var result = default(Output<float>);
                Input<float> input = x;
                CudaAsm.EmitRef("cvt.rpi.f32.f32 %0, %1;", ref result, ref input);
                return result.Value;
            }
            return System.MathF.Ceiling(x);
        }

        /// <summary>
        /// x^y (the mods' exponent is a constant). On CUDA: an integer exponent up to 64 in magnitude by repeated squaring (so a
        /// negative base works, as in C#), any other as 2^(y · log2 x).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Pow(float x, float y)
        {
            if (CudaAsm.IsSupported)
            {
                if (Floor(y) == y && Abs(y) <= 64f)
                {
                    int n = (int)Abs(y);
                    float result = 1f, power = x;
                    while (n > 0)
                    {
                        if ((n & 1) != 0)
                            result *= power;
                        power *= power;
                        n >>= 1;
                    }
                    return y < 0f ? 1f / result : result;
                }
                return Exp(y * Log(x));
            }
            return System.MathF.Pow(x, y);
        }
    }
}
