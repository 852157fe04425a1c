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
    }
}
