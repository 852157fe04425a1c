using System;
using System.Runtime.CompilerServices;
using ILGPU;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// Softmax cross-entropy over the vocabulary, fused with its backward like llm.c's
    /// <c>fused_classifier</c>: one row's lanes read the logits (compute type), compute the fp32
    /// log-sum-exp (online, in the same pass as the max), the row's loss and whether its argmax is the target, and, when asked, overwrite the logits
    /// with dlogits = (softmax − onehot) · lossScale / count, the gradient of the mean loss scaled by the
    /// GradScaler's current scale (read from device memory, so no host sync is needed). On a GPU each row is
    /// one group of up to <see cref="GroupSize"/> threads reading 8 elements a lane per load (<see cref="Float8"/>); host loops keep the
    /// thread-per-row twin. Ties for the argmax go to the smallest index in both.
    /// </summary>
    internal static class CrossEntropy
    {
        /// <summary>
        /// Threads per row on a GPU. A group a row keeps few rows in flight (one or two groups an SM: about 130–260 rows of
        /// 100 KB at GPT-2's vocabulary), so a row's second read usually finds it still in L2.
        /// </summary>
        public const int GroupSize = 1024;

        public struct Args<T>
            where T : unmanaged
        {
            public ArrayView<T> Logits;
            public ArrayView<int> Targets;
            public ArrayView<float> RowLoss;
            public ArrayView<float> RowCorrect;
            public ArrayView<float> LossScale;
            public int Vocab;
            public int Count;
            public int WriteGradient;

            /// <summary>1 when the logits view starts on a <see cref="Pack8{T}"/> boundary (<see cref="Wide.IsAligned{T}"/>).</summary>
            public int Aligned;
        }

        public struct MetricsArgs
        {
            public ArrayView<float> RowLoss;
            public ArrayView<float> RowCorrect;
            public ArrayView<float> Partials;
            public int Count;
            public int RowsPerChunk;
        }

        /// <summary>
        /// One row, its lanes striding over the vocabulary, in two passes over the logits (the row is read twice and
        /// written once; the unfused max, sum and gradient passes read it three times). A row splits into a head (the
        /// elements before its first 8-aligned one, which exist when the vocabulary is not a multiple of 8), whole vectors
        /// of 8 (<see cref="Float8"/>), and a tail; a lane visits its elements in increasing index order. Pass 1 keeps an
        /// online softmax (Milakov and Gimelshein): each lane's running max m and Σ exp(z − m), rescaled by exp(m_old − m)
        /// when m grows, and its first argmax; the lanes then agree on the row max M and add their sums rescaled by
        /// exp(m − M). Pass 2 overwrites the row with the gradient. The target's logit is read before pass 2 overwrites it
        /// (the reductions between are barriers for a group).
        /// </summary>
        private static void Row<T, TConvert, TReduce>(in Args<T> a, int row, int lane, int width)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
            where TReduce : struct, IRowReduce
        {
            long start = (long)row * a.Vocab;
            int target = a.Targets[row];
            float targetLogit = lane == 0 ? default(TConvert).ToFloat(a.Logits[start + target]) : 0f;
            int head = a.Aligned != 0 ? (int)Math.Min(a.Vocab, (Float8.Width - start % Float8.Width) % Float8.Width) : a.Vocab;
            int vectors = (a.Vocab - head) / Float8.Width;
            long firstVector = (start + head) / Float8.Width;
            int tail = head + vectors * Float8.Width;

            // Pass 1: RowMax, RowSum (relative to the lane's max) and the argmax, online.
            float max = float.NegativeInfinity;
            float sum = 0f;
            int argmax = a.Vocab;
            for (int v = lane; v < head; v += width)
                Online(default(TConvert).ToFloat(a.Logits[start + v]), v, ref max, ref sum, ref argmax);
            int q = lane;
            for (; q + width < vectors; q += 2 * width)
            {
                // Two loads in flight a lane.
                var z0 = Float8.Load<T, TConvert>(a.Logits, firstVector + q);
                var z1 = Float8.Load<T, TConvert>(a.Logits, firstVector + q + width);
                Online(z0, head + q * Float8.Width, ref max, ref sum, ref argmax);
                Online(z1, head + (q + width) * Float8.Width, ref max, ref sum, ref argmax);
            }
            if (q < vectors)
                Online(Float8.Load<T, TConvert>(a.Logits, firstVector + q), head + q * Float8.Width, ref max, ref sum, ref argmax);
            for (int v = tail + lane; v < a.Vocab; v += width)
                Online(default(TConvert).ToFloat(a.Logits[start + v]), v, ref max, ref sum, ref argmax);

            float laneMax = max;
            default(TReduce).MaxWithIndex(ref max, ref argmax);
            // A lane that saw no logit has sum 0 (and max −inf): it adds nothing.
            sum = default(TReduce).Sum(sum == 0f ? 0f : sum * KernelMath.Exp(laneMax - max));
            if (lane == 0)
            {
                a.RowLoss[row] = max + KernelMath.Log(sum) - targetLogit;
                a.RowCorrect[row] = argmax == target ? 1f : 0f;
            }
            if (a.WriteGradient == 0)
                return;

            // Pass 2: dlogits = (softmax − onehot) · lossScale / count, in place.
            var g = new Gradient { Max = max, InverseSum = 1f / sum, Scale = a.LossScale[0] / a.Count, Target = target };
            for (int v = lane; v < head; v += width)
                a.Logits[start + v] = default(TConvert).FromFloat(g.Of(default(TConvert).ToFloat(a.Logits[start + v]), v));
            q = lane;
            for (; q + width < vectors; q += 2 * width)
            {
                var z0 = Float8.Load<T, TConvert>(a.Logits, firstVector + q);
                var z1 = Float8.Load<T, TConvert>(a.Logits, firstVector + q + width);
                g.Of(z0, head + q * Float8.Width).Store<T, TConvert>(a.Logits, firstVector + q);
                g.Of(z1, head + (q + width) * Float8.Width).Store<T, TConvert>(a.Logits, firstVector + q + width);
            }
            if (q < vectors)
                g.Of(Float8.Load<T, TConvert>(a.Logits, firstVector + q), head + q * Float8.Width).Store<T, TConvert>(a.Logits, firstVector + q);
            for (int v = tail + lane; v < a.Vocab; v += width)
                a.Logits[start + v] = default(TConvert).FromFloat(g.Of(default(TConvert).ToFloat(a.Logits[start + v]), v));
        }

        /// <summary>One logit z at index v into a lane's online (max, Σ exp(z − max), argmax).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Online(float z, int v, ref float max, ref float sum, ref int argmax)
        {
            if (z > max)
            {
                sum = sum * KernelMath.Exp(max - z) + 1f;
                max = z;
                argmax = v;
            }
            else
            {
                sum += KernelMath.Exp(z - max);
            }
        }

        /// <summary>Eight logits from index v: the max rescales the sum once, then each adds exp(z − max).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Online(in Float8 z, int v, ref float max, ref float sum, ref int argmax)
        {
            float vectorMax = z.Max(out int lane);
            if (vectorMax > max)
            {
                sum *= KernelMath.Exp(max - vectorMax);
                max = vectorMax;
                argmax = v + lane;
            }
            float m = max;
            sum += ((KernelMath.Exp(z.E0 - m) + KernelMath.Exp(z.E1 - m)) + (KernelMath.Exp(z.E2 - m) + KernelMath.Exp(z.E3 - m)))
                + ((KernelMath.Exp(z.E4 - m) + KernelMath.Exp(z.E5 - m)) + (KernelMath.Exp(z.E6 - m) + KernelMath.Exp(z.E7 - m)));
        }

        /// <summary>A row's dlogit: (exp(z − RowMax) / RowSum − [v = target]) · scale.</summary>
        private struct Gradient
        {
            public float Max;
            public float InverseSum;
            public float Scale;
            public int Target;

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public readonly float Of(float z, int v)
            {
                float p = KernelMath.Exp(z - Max) * InverseSum;
                return (v == Target ? p - 1f : p) * Scale;
            }

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public readonly Float8 Of(in Float8 z, int v) => new()
            {
                E0 = Of(z.E0, v), E1 = Of(z.E1, v + 1), E2 = Of(z.E2, v + 2), E3 = Of(z.E3, v + 3),
                E4 = Of(z.E4, v + 4), E5 = Of(z.E5, v + 5), E6 = Of(z.E6, v + 6), E7 = Of(z.E7, v + 7),
            };
        }

        /// <summary>One thread per row (host loops).</summary>
        public static void Kernel<T, TConvert>(Index1D row, Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T> =>
            Row<T, TConvert, SingleLane>(a, row, 0, 1);

        /// <summary>One warp per row (GPU, vocabularies below <see cref="GroupRowsFrom"/>): no group barrier.</summary>
        public static void WarpRowsKernel<T, TConvert>(Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int row = RowLaunch.WarpRow();
            if (row < a.Count)
                Row<T, TConvert, WarpReduce>(a, row, Warp.LaneIdx, Warp.WarpSize);
        }

        /// <summary>
        /// The smallest vocabulary that gets a group of threads a row (<see cref="RowsKernel{T, TConvert}"/>): 8,192 logits, a
        /// vector for each of 1024 threads. Smaller rows take a warp each. On the H200 the group kernel with a vocabulary of
        /// 64 never finished (cuda-gdb showed RowsKernel resident and spinning after 30 s, at 1024 threads a group and again
        /// at 32); 50,304 and 50,257 ran. The cause was not found; the warp kernel has no group barrier.
        /// </summary>
        public const int GroupRowsFrom = GroupSize * Float8.Width;

        /// <summary>One group per row (GPU).</summary>
        public static void RowsKernel<T, TConvert>(Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T> =>
            Row<T, TConvert, GroupReduce>(a, Grid.IdxX, Group.IdxX, Group.DimX);

        /// <summary>Partials[2·chunk] = Σ loss, Partials[2·chunk + 1] = Σ correct over a chunk of rows.</summary>
        public static void MetricsKernel(Index1D chunk, MetricsArgs a)
        {
            int first = chunk * a.RowsPerChunk;
            int end = Math.Min(a.Count, first + a.RowsPerChunk);
            float loss = 0f;
            float correct = 0f;
            for (int n = first; n < end; n++)
            {
                loss += a.RowLoss[n];
                correct += a.RowCorrect[n];
            }
            a.Partials[2 * chunk] = loss;
            a.Partials[2 * chunk + 1] = correct;
        }

        /// <summary>Loss per row, correctness per row and (when <paramref name="writeGradient"/>) dlogits in place.</summary>
        public static void ForwardBackward<T, TConvert>(
            DeviceLauncher launcher, int rows, int vocab, ArrayView<T> logits, ArrayView<int> targets,
            ArrayView<float> rowLoss, ArrayView<float> rowCorrect, ArrayView<float> lossScale, bool writeGradient)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            var args = new Args<T>
            {
                Logits = logits,
                Targets = targets,
                RowLoss = rowLoss,
                RowCorrect = rowCorrect,
                LossScale = lossScale,
                Vocab = vocab,
                Count = rows,
                WriteGradient = writeGradient ? 1 : 0,
                Aligned = Wide.IsAligned(logits) ? 1 : 0,
            };
            if (launcher.RunsOnHost)
                launcher.Launch(Kernel<T, TConvert>, rows, args);
            else if (vocab < GroupRowsFrom)
                RowLaunch.Launch(launcher, Kernel<T, TConvert>, WarpRowsKernel<T, TConvert>, rows, args);
            else
                launcher.LaunchGrouped(RowsKernel<T, TConvert>, rows, launcher.GroupSizeFor<Args<T>>(RowsKernel<T, TConvert>, GroupSize), args);
        }

        /// <summary>Chunk sums of loss and correctness into <paramref name="partials"/> (2 floats per chunk).</summary>
        public static void Metrics(
            DeviceLauncher launcher, int rows, int rowsPerChunk, ArrayView<float> rowLoss, ArrayView<float> rowCorrect, ArrayView<float> partials) =>
            launcher.Launch(MetricsKernel, (rows + rowsPerChunk - 1) / rowsPerChunk, new MetricsArgs
            {
                RowLoss = rowLoss,
                RowCorrect = rowCorrect,
                Partials = partials,
                Count = rows,
                RowsPerChunk = rowsPerChunk,
            });
    }
}
