using System.Runtime.CompilerServices;
using ILGPU.IR.Intrinsics;
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
        [IntrinsicImplementation]
        public static float Exp(float x) => CudaAsm.IsSupported ? ExpPtx(x) : ExpCpu(x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float ExpPtx(float x)
        {
            var result = default(Output<float>);
            Input<float> scaled = x * Log2E;
            CudaAsm.EmitRef("ex2.approx.ftz.f32 %0, %1;", ref result, ref scaled);
            return result.Value;
        }

        private static float ExpCpu(float x) => System.MathF.Exp(x);

        /// <summary>
        /// max(a, b) that returns NaN when either is NaN, on every backend. IEEE maxNum (PTX <c>max.f32</c>, what
        /// <see cref="System.Math.Max(float, float)"/> becomes on CUDA) returns the other operand, so a NaN score would
        /// vanish from a row's maximum and the row would come out finite.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float MaxNaN(float a, float b) => a > b || float.IsNaN(a) ? a : b;

        /// <summary>ln x, for x &gt; 0.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static float Log(float x) => CudaAsm.IsSupported ? LogPtx(x) : LogCpu(x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float LogPtx(float x)
        {
            var result = default(Output<float>);
            Input<float> input = x;
            CudaAsm.EmitRef("lg2.approx.ftz.f32 %0, %1;", ref result, ref input);
            return result.Value * Ln2;
        }

        private static float LogCpu(float x) => System.MathF.Log(x);

        // The functions score and mask mods may call (docs/DSL.md), as the generated mods print them.

        /// <summary>min(a, b) that returns NaN when either is NaN (C#'s MathF.Min), on every backend.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float MinNaN(float a, float b) => a < b || float.IsNaN(a) ? a : b;

        /// <summary>
        /// tanh x. On CUDA: 1 − 2 / (e^(2|x|) + 1) with the sign of x, from ex2.approx (a few ulp), and the odd Taylor series below
        /// |x| = 2^-6 where that form would cancel; on the CPU, <see cref="System.MathF.Tanh"/>.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static float Tanh(float x) => CudaAsm.IsSupported ? TanhPtx(x) : TanhCpu(x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float TanhPtx(float x)
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

        private static float TanhCpu(float x) => System.MathF.Tanh(x);

        /// <summary>√x (sqrt.rn on CUDA: correctly rounded).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static float Sqrt(float x) => CudaAsm.IsSupported ? SqrtPtx(x) : SqrtCpu(x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float SqrtPtx(float x)
        {
            var result = default(Output<float>);
            Input<float> input = x;
            CudaAsm.EmitRef("sqrt.rn.f32 %0, %1;", ref result, ref input);
            return result.Value;
        }

        private static float SqrtCpu(float x) => System.MathF.Sqrt(x);

        /// <summary>|x|.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static float Abs(float x) => CudaAsm.IsSupported ? AbsPtx(x) : AbsCpu(x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float AbsPtx(float x)
        {
            var result = default(Output<float>);
            Input<float> input = x;
            CudaAsm.EmitRef("abs.f32 %0, %1;", ref result, ref input);
            return result.Value;
        }

        private static float AbsCpu(float x) => System.MathF.Abs(x);

        /// <summary>The largest integer ≤ x.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static float Floor(float x) => CudaAsm.IsSupported ? FloorPtx(x) : FloorCpu(x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float FloorPtx(float x)
        {
            var result = default(Output<float>);
            Input<float> input = x;
            CudaAsm.EmitRef("cvt.rmi.f32.f32 %0, %1;", ref result, ref input);
            return result.Value;
        }

        private static float FloorCpu(float x) => System.MathF.Floor(x);

        /// <summary>The smallest integer ≥ x.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static float Ceiling(float x) => CudaAsm.IsSupported ? CeilingPtx(x) : CeilingCpu(x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float CeilingPtx(float x)
        {
            var result = default(Output<float>);
            Input<float> input = x;
            CudaAsm.EmitRef("cvt.rpi.f32.f32 %0, %1;", ref result, ref input);
            return result.Value;
        }

        private static float CeilingCpu(float x) => System.MathF.Ceiling(x);

        /// <summary>
        /// x^y (the mods' exponent is a constant). On CUDA: an integer exponent up to 64 in magnitude by repeated squaring (so a
        /// negative base works, as in C#), any other as 2^(y · log2 x).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static float Pow(float x, float y) => CudaAsm.IsSupported ? PowPtx(x, y) : PowCpu(x, y);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float PowPtx(float x, float y)
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

        private static float PowCpu(float x, float y) => System.MathF.Pow(x, y);
    }
}
