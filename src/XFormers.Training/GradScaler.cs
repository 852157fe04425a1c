using System;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace XFormers.Training
{
    /// <summary>
    /// Dynamic loss scaling as PyTorch's <c>torch.amp.GradScaler</c>: the loss gradient is multiplied by the
    /// scale; a step whose gradients hold inf or NaN is skipped and the scale halves; after
    /// <see cref="GrowthInterval"/> clean steps in a row it doubles. All state lives on the device
    /// (<see cref="State"/>: scale, growth tracker, optimizer step count, skipped steps) and is updated by
    /// kernels, so a training step never waits for the host. With <c>dynamic: false</c> (fp32, bf16) the scale
    /// stays 1 and steps with non-finite gradients are still skipped.
    /// </summary>
    public sealed class GradScaler : IDisposable
    {
        public const int Scale = 0;
        public const int GrowthTracker = 1;
        public const int AdamStep = 2;
        public const int SkippedSteps = 3;

        private readonly MemoryBuffer1D<float, Stride1D.Dense> state;
        private readonly MemoryBuffer1D<int, Stride1D.Dense> foundInf;
        private readonly XFormersContext context;

        public GradScaler(XFormersContext context, bool dynamic, float initialScale = 65536f, float growthFactor = 2f, float backoffFactor = 0.5f, int growthInterval = 2000)
        {
            this.context = context ?? throw new ArgumentNullException(nameof(context));
            Dynamic = dynamic;
            InitialScale = dynamic ? initialScale : 1f;
            GrowthFactor = growthFactor;
            BackoffFactor = backoffFactor;
            GrowthInterval = growthInterval;
            state = context.Accelerator.Allocate1D(new[] { InitialScale, 0f, 0f, 0f });
            foundInf = context.Accelerator.Allocate1D(new[] { 0 });
        }

        public bool Dynamic { get; }

        public float InitialScale { get; }

        public float GrowthFactor { get; }

        public float BackoffFactor { get; }

        public int GrowthInterval { get; }

        /// <summary>[scale, growth tracker, optimizer steps taken, steps skipped] on the device.</summary>
        public ArrayView<float> State => state.View;

        /// <summary>Nonzero once a non-finite gradient was seen this step.</summary>
        public ArrayView<int> FoundInf => foundInf.View;

        internal struct CheckArgs
        {
            public ArrayView<float> Grads;
            public ArrayView<int> FoundInf;

            /// <summary>Threads [0, Vectors) check 8 gradients each (<see cref="Float8"/>); the rest one each, from 8 · Vectors on.</summary>
            public long Vectors;
        }

        internal struct UpdateArgs
        {
            public ArrayView<float> State;
            public ArrayView<int> FoundInf;
            public float GrowthFactor;
            public float BackoffFactor;
            public int GrowthInterval;
            public int Dynamic;
        }

        /// <summary>
        /// Flags inf or NaN (exponent bits all ones) among a thread's 8 gradients, or its one. Neighbouring threads read
        /// neighbouring vectors (coalesced). Every writer stores 1: no atomics needed.
        /// </summary>
        internal static void CheckKernel(Index1D i, CheckArgs a)
        {
            bool bad;
            if (i < a.Vectors)
            {
                var g = Float8.Load(a.Grads, i);
                bad = (NonFinite(g.E0) | NonFinite(g.E1)) | (NonFinite(g.E2) | NonFinite(g.E3))
                    | (NonFinite(g.E4) | NonFinite(g.E5)) | (NonFinite(g.E6) | NonFinite(g.E7));
            }
            else
            {
                bad = NonFinite(a.Grads[Float8.Width * a.Vectors + (i - a.Vectors)]);
            }
            if (bad)
                a.FoundInf[0] = 1;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static bool NonFinite(float value) => (Interop.FloatAsInt(value) & 0x7F80_0000u) == 0x7F80_0000u;

        /// <summary>After the optimizer: back off or grow the scale, count the step, clear the flag.</summary>
        internal static void UpdateKernel(Index1D index, UpdateArgs a)
        {
            if (a.FoundInf[0] != 0)
            {
                a.State[SkippedSteps] += 1f;
                a.State[GrowthTracker] = 0f;
                if (a.Dynamic != 0)
                    a.State[Scale] *= a.BackoffFactor;
            }
            else
            {
                a.State[AdamStep] += 1f;
                if (a.Dynamic != 0)
                {
                    float tracker = a.State[GrowthTracker] + 1f;
                    if (tracker >= a.GrowthInterval)
                    {
                        a.State[Scale] *= a.GrowthFactor;
                        tracker = 0f;
                    }
                    a.State[GrowthTracker] = tracker;
                }
            }
            a.FoundInf[0] = 0;
        }

        /// <summary>Looks for inf/NaN in the (scaled) gradients.</summary>
        public void Check(DeviceLauncher launcher, ArrayView<float> grads)
        {
            ArgumentNullException.ThrowIfNull(launcher);
            long vectors = Wide.IsAligned(grads) ? grads.Length / Float8.Width : 0;
            launcher.Launch(CheckKernel, grads.Length - (Float8.Width - 1) * vectors, new CheckArgs { Grads = grads, FoundInf = FoundInf, Vectors = vectors });
        }

        /// <summary>Updates the scale and counters from this step's flag.</summary>
        public void Update(DeviceLauncher launcher) =>
            launcher.Launch(UpdateKernel, 1, new UpdateArgs
            {
                State = State,
                FoundInf = FoundInf,
                GrowthFactor = GrowthFactor,
                BackoffFactor = BackoffFactor,
                GrowthInterval = GrowthInterval,
                Dynamic = Dynamic ? 1 : 0,
            });

        /// <summary>The device state on the host (synchronizes).</summary>
        public float[] ReadState()
        {
            context.Synchronize();
            return state.GetAsArray1D();
        }

        /// <summary>Restores state from a checkpoint.</summary>
        public void WriteState(float[] values)
        {
            ArgumentNullException.ThrowIfNull(values);
            if (values.Length != 4)
                throw new ArgumentException("scaler state has 4 values: scale, growth tracker, optimizer steps, skipped steps.", nameof(values));
            state.CopyFromCPU(values);
            foundInf.CopyFromCPU(new[] { 0 });
        }

        public void Dispose()
        {
            state.Dispose();
            foundInf.Dispose();
        }
    }
}
