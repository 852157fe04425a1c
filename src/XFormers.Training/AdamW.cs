using System;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// AdamW over the flat fp32 master weights (PyTorch's <c>torch.optim.AdamW</c> update, decoupled weight
    /// decay), fused with the GradScaler's unscale and the refresh of the compute-type copy of the weights. It
    /// reads the scale, the found-inf flag and its step count from the scaler's device state, so a skipped step
    /// changes nothing and costs no host sync.
    /// </summary>
    public sealed class AdamW : IDisposable
    {
        private MemoryBuffer1D<float, Stride1D.Dense>? corrections;

        public AdamW(float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0.01f)
        {
            LearningRate = learningRate;
            Beta1 = beta1;
            Beta2 = beta2;
            Epsilon = epsilon;
            WeightDecay = weightDecay;
        }

        public float LearningRate { get; set; }

        public float Beta1 { get; }

        public float Beta2 { get; }

        public float Epsilon { get; }

        public float WeightDecay { get; }

        internal struct Args<T>
            where T : unmanaged
        {
            public ArrayView<float> Params;
            public ArrayView<float> Grads;
            public ArrayView<float> M;
            public ArrayView<float> V;
            public ArrayView<T> Compute;
            public ArrayView<float> ScalerState;
            public ArrayView<int> FoundInf;
            public ArrayView<float> Corrections;
            public float LearningRate;
            public float Beta1;
            public float Beta2;
            public float Epsilon;
            public float WeightDecay;
        }

        internal static void Kernel<T, TConvert>(Index1D i, Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            if (a.FoundInf[0] != 0)
                return;
            float g = a.Grads[i] / a.ScalerState[GradScaler.Scale];
            float m = a.Beta1 * a.M[i] + (1f - a.Beta1) * g;
            float v = a.Beta2 * a.V[i] + (1f - a.Beta2) * g * g;
            float correction1 = a.Corrections[0];
            float correction2 = a.Corrections[1];
            float p = a.Params[i] * (1f - a.LearningRate * a.WeightDecay);
            float denominator = MathF.Sqrt(v) / MathF.Sqrt(correction2) + a.Epsilon;
            p -= a.LearningRate / correction1 * m / denominator;
            a.M[i] = m;
            a.V[i] = v;
            a.Params[i] = p;
            a.Compute[i] = default(TConvert).FromFloat(p);
        }

        /// <summary>The bias corrections 1 − β^t of the coming step, once (one thread) instead of per parameter.</summary>
        internal static void CorrectionsKernel<T>(Index1D i, Args<T> a)
            where T : unmanaged
        {
            float step = a.ScalerState[GradScaler.AdamStep] + 1f;
            a.Corrections[0] = 1f - MathF.Exp(step * MathF.Log(a.Beta1));
            a.Corrections[1] = 1f - MathF.Exp(step * MathF.Log(a.Beta2));
        }

        /// <summary>One update of every parameter (skipped on the device when the scaler found inf/NaN).</summary>
        public void Step<T, TConvert>(DeviceLauncher launcher, ParameterStore<T> store, GradScaler scaler)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            corrections ??= launcher.Accelerator.Allocate1D<float>(2);
            var args = new Args<T>
            {
                Params = store.Params,
                Grads = store.Grads,
                M = store.M,
                V = store.V,
                Compute = store.Compute,
                ScalerState = scaler.State,
                FoundInf = scaler.FoundInf,
                LearningRate = LearningRate,
                Beta1 = Beta1,
                Beta2 = Beta2,
                Epsilon = Epsilon,
                WeightDecay = WeightDecay,
                Corrections = corrections.View,
            };
            launcher.Launch(CorrectionsKernel<T>, 1, args);
            launcher.Launch(Kernel<T, TConvert>, store.Count, args);
        }

        public void Dispose() => corrections?.Dispose();
    }
}
