using System;
using ILGPU;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// The fused SwiGLU nonlinearity of xFormers' <c>xops.SwiGLU</c>: the first projection <c>w12</c> gives
    /// [x1 | x2] (each <c>hidden</c> wide), hidden = silu(x1) ∘ x2, then <c>w3</c> projects back. One
    /// elementwise kernel each way; the backward writes [dx1 | dx2] over the same layout.
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
        }

        /// <summary>hidden[n, j] = silu(x1[n, j]) · x2[n, j].</summary>
        public static void ForwardKernel<T, TConvert>(Index1D index, Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int n = index / a.Width;
            int j = index - n * a.Width;
            long x1 = (long)n * 2 * a.Width + j;
            float u = default(TConvert).ToFloat(a.X12[x1]);
            float v = default(TConvert).ToFloat(a.X12[x1 + a.Width]);
            float sigmoid = 1f / (1f + KernelMath.Exp(-u));
            a.Hidden[index] = default(TConvert).FromFloat(u * sigmoid * v);
        }

        /// <summary>dx1 = dh · x2 · σ(x1)(1 + x1(1 − σ(x1))), dx2 = dh · silu(x1).</summary>
        public static void BackwardKernel<T, TConvert>(Index1D index, Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int n = index / a.Width;
            int j = index - n * a.Width;
            long x1 = (long)n * 2 * a.Width + j;
            float u = default(TConvert).ToFloat(a.X12[x1]);
            float v = default(TConvert).ToFloat(a.X12[x1 + a.Width]);
            float dh = default(TConvert).ToFloat(a.dHidden[index]);
            float sigmoid = 1f / (1f + KernelMath.Exp(-u));
            float silu = u * sigmoid;
            a.dX12[x1] = default(TConvert).FromFloat(dh * v * sigmoid * (1f + u * (1f - sigmoid)));
            a.dX12[x1 + a.Width] = default(TConvert).FromFloat(dh * silu);
        }

        public static void Forward<T, TConvert>(DeviceLauncher launcher, int rows, int width, ArrayView<T> x12, ArrayView<T> hidden)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T> =>
            launcher.Launch(ForwardKernel<T, TConvert>, (long)rows * width, new Args<T> { X12 = x12, Hidden = hidden, Width = width });

        public static void Backward<T, TConvert>(
            DeviceLauncher launcher, int rows, int width, ArrayView<T> x12, ArrayView<T> dHidden, ArrayView<T> dX12)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T> =>
            launcher.Launch(BackwardKernel<T, TConvert>, (long)rows * width, new Args<T> { X12 = x12, dHidden = dHidden, dX12 = dX12, Width = width });
    }
}
