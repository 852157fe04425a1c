using System.Runtime.CompilerServices;
using ILGPU;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// The fused SwiGLU nonlinearity of xFormers' <c>xops.SwiGLU</c>: the first projection <c>w12</c> gives
    /// [x1 | x2] (each <c>hidden</c> wide), hidden = silu(x1) ∘ x2, then <c>w3</c> projects back. One
    /// elementwise kernel each way; the backward writes [dx1 | dx2] over the same layout. Each thread takes 8
    /// consecutive outputs (<see cref="Float8"/>: 16-byte loads and stores in fp16) when the width is a multiple of 8
    /// and the views are aligned, one output otherwise.
    /// </summary>
    internal static class SwiGlu
    {
        public struct Args<T>
            where T : unmanaged
        {
            public ArrayView<T> X12;
            public ArrayView<T> Hidden;
            public ArrayView<T> dHidden;
            public ArrayView<T> dX12;
            public int Width;

            /// <summary>1: a thread per 8 outputs; 0: a thread per output.</summary>
            public int Aligned;
        }

        /// <summary>hidden[n, j] = silu(x1[n, j]) · x2[n, j].</summary>
        public static void ForwardKernel<T, TConvert>(Index1D index, Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            if (a.Aligned != 0)
            {
                long x1 = FirstInput(index, a.Width / Float8.Width);
                var u = Float8.Load<T, TConvert>(a.X12, x1);
                var v = Float8.Load<T, TConvert>(a.X12, x1 + a.Width / Float8.Width);
                new Float8
                {
                    E0 = Forward(u.E0, v.E0), E1 = Forward(u.E1, v.E1), E2 = Forward(u.E2, v.E2), E3 = Forward(u.E3, v.E3),
                    E4 = Forward(u.E4, v.E4), E5 = Forward(u.E5, v.E5), E6 = Forward(u.E6, v.E6), E7 = Forward(u.E7, v.E7),
                }.Store<T, TConvert>(a.Hidden, index);
            }
            else
            {
                long x1 = FirstInput(index, a.Width);
                float u = default(TConvert).ToFloat(a.X12[x1]);
                float v = default(TConvert).ToFloat(a.X12[x1 + a.Width]);
                a.Hidden[index] = default(TConvert).FromFloat(Forward(u, v));
            }
        }

        /// <summary>dx1 = dh · x2 · σ(x1)(1 + x1(1 − σ(x1))), dx2 = dh · silu(x1).</summary>
        public static void BackwardKernel<T, TConvert>(Index1D index, Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            if (a.Aligned != 0)
            {
                int vectors = a.Width / Float8.Width;
                long x1 = FirstInput(index, vectors);
                var u = Float8.Load<T, TConvert>(a.X12, x1);
                var v = Float8.Load<T, TConvert>(a.X12, x1 + vectors);
                var dh = Float8.Load<T, TConvert>(a.dHidden, index);
                Float8 du = default, dv = default;
                Backward(u.E0, v.E0, dh.E0, out du.E0, out dv.E0);
                Backward(u.E1, v.E1, dh.E1, out du.E1, out dv.E1);
                Backward(u.E2, v.E2, dh.E2, out du.E2, out dv.E2);
                Backward(u.E3, v.E3, dh.E3, out du.E3, out dv.E3);
                Backward(u.E4, v.E4, dh.E4, out du.E4, out dv.E4);
                Backward(u.E5, v.E5, dh.E5, out du.E5, out dv.E5);
                Backward(u.E6, v.E6, dh.E6, out du.E6, out dv.E6);
                Backward(u.E7, v.E7, dh.E7, out du.E7, out dv.E7);
                du.Store<T, TConvert>(a.dX12, x1);
                dv.Store<T, TConvert>(a.dX12, x1 + vectors);
            }
            else
            {
                long x1 = FirstInput(index, a.Width);
                float u = default(TConvert).ToFloat(a.X12[x1]);
                float v = default(TConvert).ToFloat(a.X12[x1 + a.Width]);
                Backward(u, v, default(TConvert).ToFloat(a.dHidden[index]), out float du, out float dv);
                a.dX12[x1] = default(TConvert).FromFloat(du);
                a.dX12[x1 + a.Width] = default(TConvert).FromFloat(dv);
            }
        }

        /// <summary>The x1 unit (element or vector) of output unit <paramref name="index"/>, rows of <paramref name="width"/> units.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static long FirstInput(int index, int width)
        {
            int n = index / width;
            return (long)n * 2 * width + (index - n * width);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float Forward(float u, float v)
        {
            float sigmoid = 1f / (1f + KernelMath.Exp(-u));
            return u * sigmoid * v;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Backward(float u, float v, float dh, out float du, out float dv)
        {
            float sigmoid = 1f / (1f + KernelMath.Exp(-u));
            du = dh * v * sigmoid * (1f + u * (1f - sigmoid));
            dv = dh * (u * sigmoid);
        }

        public static void Forward<T, TConvert>(DeviceLauncher launcher, int rows, int width, ArrayView<T> x12, ArrayView<T> hidden)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            var args = new Args<T> { X12 = x12, Hidden = hidden, Width = width, Aligned = IsAligned(width, x12, hidden, hidden) };
            launcher.Launch(ForwardKernel<T, TConvert>, Units(rows, width, args), args);
        }

        public static void Backward<T, TConvert>(
            DeviceLauncher launcher, int rows, int width, ArrayView<T> x12, ArrayView<T> dHidden, ArrayView<T> dX12)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            var args = new Args<T> { X12 = x12, dHidden = dHidden, dX12 = dX12, Width = width, Aligned = IsAligned(width, x12, dHidden, dX12) };
            launcher.Launch(BackwardKernel<T, TConvert>, Units(rows, width, args), args);
        }

        private static int IsAligned<T>(int width, ArrayView<T> input, ArrayView<T> first, ArrayView<T> second)
            where T : unmanaged =>
            width % Float8.Width == 0 && Wide.IsAligned(input) && Wide.IsAligned(first) && Wide.IsAligned(second) ? 1 : 0;

        private static long Units<T>(int rows, int width, in Args<T> args)
            where T : unmanaged =>
            (long)rows * width / (args.Aligned != 0 ? Float8.Width : 1);
    }
}
