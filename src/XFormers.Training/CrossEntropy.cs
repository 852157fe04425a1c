using System;
using ILGPU;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// Softmax cross-entropy over the vocabulary, fused with its backward like llm.c's
    /// <c>fused_classifier</c>: one thread per row reads the logits (compute type), computes the fp32
    /// log-sum-exp (online, in the same pass as the max), the row's loss and whether its argmax is the target, and, when asked, overwrites the logits
    /// with dlogits = (softmax − onehot) · lossScale / count, the gradient of the mean loss scaled by the
    /// GradScaler's current scale (read from device memory, so no host sync is needed). On a GPU each row is
    /// one warp (a 50k vocabulary row per thread took 140 ms at the GPT-2-small shape); host loops keep the
    /// thread-per-row twin. Ties for the argmax go to the smallest index in both.
    /// </summary>
    internal static class CrossEntropy
    {
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
        /// written once; the unfused max, sum and gradient passes read it three times). Pass 1 keeps an online softmax
        /// (Milakov and Gimelshein): each lane's running max m and Σ exp(z − m), rescaled by exp(m_old − m) when m grows,
        /// and its first argmax; the lanes then agree on the row max M and add their sums rescaled by exp(m − M). Pass 2
        /// overwrites the row with the gradient. The target's logit is read before pass 2 overwrites it.
        /// </summary>
        private static void Row<T, TConvert, TReduce>(in Args<T> a, int row, int lane, int width)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
            where TReduce : struct, IRowReduce
        {
            long start = (long)row * a.Vocab;
            int target = a.Targets[row];
            float targetLogit = default(TConvert).ToFloat(a.Logits[start + target]);
            // Pass 1: RowMax, RowSum (relative to the lane's max) and the argmax, online.
            float max = float.NegativeInfinity;
            float sum = 0f;
            int argmax = a.Vocab;
            for (int v = lane; v < a.Vocab; v += width)
            {
                float z = default(TConvert).ToFloat(a.Logits[start + v]);
                if (argmax == a.Vocab)
                {
                    sum = 1f;
                    max = z;
                    argmax = v;
                }
                else if (z > max)
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
            float scale = a.LossScale[0] / a.Count;
            float inverseSum = 1f / sum;
            for (int v = lane; v < a.Vocab; v += width)
            {
                float p = KernelMath.Exp(default(TConvert).ToFloat(a.Logits[start + v]) - max) * inverseSum;
                a.Logits[start + v] = default(TConvert).FromFloat((v == target ? p - 1f : p) * scale);
            }
        }

        /// <summary>One thread per row (host loops).</summary>
        public static void Kernel<T, TConvert>(Index1D row, Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T> =>
            Row<T, TConvert, SingleLane>(a, row, 0, 1);

        /// <summary>One warp per row (GPU).</summary>
        public static void RowsKernel<T, TConvert>(Args<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int row = RowLaunch.WarpRow();
            if (row < a.Count)
                Row<T, TConvert, WarpReduce>(a, row, Warp.LaneIdx, Warp.WarpSize);
        }

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
            };
            RowLaunch.Launch(launcher, Kernel<T, TConvert>, RowsKernel<T, TConvert>, rows, args);
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
