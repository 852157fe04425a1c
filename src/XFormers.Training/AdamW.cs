using System;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// AdamW over the flat fp32 master weights (PyTorch's <c>torch.optim.AdamW</c> update, decoupled weight
    /// decay), fused with the GradScaler's unscale and the refresh of the compute-type copy of the weights. It
    /// reads the scale, the found-inf flag and its step count from the scaler's device state, so a skipped step
    /// changes nothing and costs no host sync. Each thread updates 8 consecutive parameters (<see cref="Float8"/>: 32-byte
    /// loads of weight, gradient and moments, a 16-byte store of the fp16 copy) when the buffers are aligned.
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

            /// <summary>Threads [0, Vectors) update 8 parameters each (<see cref="Float8"/>); the rest one each, from 8 · Vectors on.</summary>
            public long Vectors;
        }

        /// <summary>The step's constants, read once a thread.</summary>
        private struct StepConstants
        {
            public float Scale;
            public float Decay;
            public float StepSize;
            public float SqrtCorrection2;
            public float Beta1;
            public float Beta2;
            public float Epsilon;

            /// <summary>
            /// One parameter: p·(1 − lr·wd) − lr / (1 − β1^t) · m / (√v / √(1 − β2^t) + ε) with the unscaled gradient
            /// (<c>torch.optim.AdamW</c>'s update); the constants are hoisted, the per-parameter operations and their order
            /// are those of the one-parameter-a-thread kernel this replaced, so results are bit-identical to it.
            /// </summary>
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public readonly void Update(ref float p, ref float m, ref float v, float scaledGrad)
            {
                float g = scaledGrad / Scale;
                m = Beta1 * m + (1f - Beta1) * g;
                v = Beta2 * v + (1f - Beta2) * g * g;
                float denominator = MathF.Sqrt(v) / SqrtCorrection2 + Epsilon;
                p = p * Decay - StepSize * m / denominator;
            }
        }

        /// <summary>Reads the moments, writes moments, master weight and its compute-type copy: 8 parameters a thread when aligned.</summary>
        internal static void Kernel<T, TConvert>(Index1D i, Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            if (a.FoundInf[0] != 0)
                return;
            var step = new StepConstants
            {
                Scale = a.ScalerState[GradScaler.Scale],
                Decay = 1f - a.LearningRate * a.WeightDecay,
                StepSize = a.LearningRate / a.Corrections[0],
                SqrtCorrection2 = MathF.Sqrt(a.Corrections[1]),
                Beta1 = a.Beta1,
                Beta2 = a.Beta2,
                Epsilon = a.Epsilon,
            };
            if (i < a.Vectors)
            {
                var p = Float8.Load(a.Params, i);
                var g = Float8.Load(a.Grads, i);
                var m = Float8.Load(a.M, i);
                var v = Float8.Load(a.V, i);
                step.Update(ref p.E0, ref m.E0, ref v.E0, g.E0);
                step.Update(ref p.E1, ref m.E1, ref v.E1, g.E1);
                step.Update(ref p.E2, ref m.E2, ref v.E2, g.E2);
                step.Update(ref p.E3, ref m.E3, ref v.E3, g.E3);
                step.Update(ref p.E4, ref m.E4, ref v.E4, g.E4);
                step.Update(ref p.E5, ref m.E5, ref v.E5, g.E5);
                step.Update(ref p.E6, ref m.E6, ref v.E6, g.E6);
                step.Update(ref p.E7, ref m.E7, ref v.E7, g.E7);
                m.Store(a.M, i);
                v.Store(a.V, i);
                p.Store(a.Params, i);
                p.Store<T, TConvert>(a.Compute, i);
            }
            else
            {
                long e = Float8.Width * a.Vectors + (i - a.Vectors);
                float p = a.Params[e];
                float m = a.M[e];
                float v = a.V[e];
                step.Update(ref p, ref m, ref v, a.Grads[e]);
                a.M[e] = m;
                a.V[e] = v;
                a.Params[e] = p;
                a.Compute[e] = default(TConvert).FromFloat(p);
            }
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
            bool aligned = Wide.IsAligned(store.Params) && Wide.IsAligned(store.Grads) && Wide.IsAligned(store.M) && Wide.IsAligned(store.V)
                && Wide.IsAligned(store.Compute);
            args.Vectors = aligned ? store.Count / Float8.Width : 0;
            launcher.Launch(CorrectionsKernel<T>, 1, args);
            launcher.Launch(Kernel<T, TConvert>, store.Count - (Float8.Width - 1) * args.Vectors, args);
        }

        public void Dispose() => corrections?.Dispose();
    }
}
