using System;
using ILGPU;
using ILGPU.Runtime;
using Half = ILGPU.Half;

namespace XFormers.Kernels
{
    /// <summary>
    /// One partial result of attention over a subset of the keys, and where the merge keeps its running state.
    /// Partial O [B, SourceRows, H, K] and its Lse [B, H, SourceRows]; output row m of batch b reads partial row
    /// <c>RowMap[m]</c> (-1: this partial has no row for it; an empty map reads row m). The running state is
    /// Acc [B, Rows, H, K] (float, Σ exp(lse_c − RowMax) · O_c), RowMax and RowSum [B, H, Rows].
    /// </summary>
    internal struct MergeArgs<T>
        where T : unmanaged
    {
        public int Batch;
        public int Rows;
        public int Heads;
        public int HeadDim;
        public int SourceRows;
        /// <summary>1 for the first partial: the running state is written, not read.</summary>
        public int First;

        public ArrayView<T> Output;
        public ArrayView<float> Lse;

        /// <summary>
        /// The partial's row for (row m, j = h mod <see cref="HeadGroup"/>) at RowMap[m · HeadGroup + j] (−1: the partial has
        /// none); empty: row m itself.
        /// </summary>
        public ArrayView<int> RowMap;

        /// <summary>
        /// Query heads packed into one head of the partial (grouped-query decoding): head h of row m is head h / HeadGroup of
        /// the partial's row RowMap[m · HeadGroup + h mod HeadGroup]. 1 (or 0): the partial has <see cref="Heads"/> heads.
        /// </summary>
        public int HeadGroup;

        public ArrayView<float> Acc;
        public ArrayView<float> RowMax;
        public ArrayView<float> RowSum;

        /// <summary>The merged O [B, Rows, H, K] (written by the last step) and Lse [B, H, Rows] (RowMax's storage may be it).</summary>
        public ArrayView<T> Merged;
        public ArrayView<float> MergedLse;
    }

    /// <summary>
    /// Merges attention computed over disjoint key subsets, exactly: with lse_c the log-sum-exp of each part,
    /// LSE = log Σ_c exp(lse_c) and O = Σ_c exp(lse_c − LSE) · O_c (xFormers' <c>merge_attentions</c>). A part a row does
    /// not see (lse_c = −∞) weighs nothing; a row no part sees gets O = 0 and LSE = −∞, as the forward writes it. Parts
    /// are folded in one launch each, online-softmax style, in float; <see cref="Finish"/> writes O and LSE once.
    /// One thread per (batch, row, head).
    /// </summary>
    internal static class AttentionMerge
    {
        /// <summary>Folds one partial into the running state.</summary>
        public static void Step<T>(Accelerator accelerator, in MergeArgs<T> args)
            where T : unmanaged
        {
            long threads = (long)args.Batch * args.Rows * args.Heads;
            if (threads == 0)
                return;
            Kernel<T>(accelerator, finish: false)(checked((int)threads), args);
        }

        /// <summary>O = Acc / RowSum in T, LSE = RowMax + log RowSum (0 and −∞ for a row no partial saw).</summary>
        public static void Finish<T>(Accelerator accelerator, in MergeArgs<T> args)
            where T : unmanaged
        {
            long threads = (long)args.Batch * args.Rows * args.Heads;
            if (threads == 0)
                return;
            Kernel<T>(accelerator, finish: true)(checked((int)threads), args);
        }

        private static Action<Index1D, MergeArgs<T>> Kernel<T>(Accelerator accelerator, bool finish)
            where T : unmanaged =>
            KernelCache.GetOrAdd(accelerator, (typeof(MergeArgs<T>), finish), static (acc, key) =>
            {
                Delegate kernel = typeof(T) == typeof(float)
                    ? key.finish ? new Action<Index1D, MergeArgs<float>>(FinishKernel<float, FloatConvert>) : StepKernel<float, FloatConvert>
                    : typeof(T) == typeof(Half)
                    ? key.finish ? new Action<Index1D, MergeArgs<Half>>(FinishKernel<Half, HalfConvert>) : StepKernel<Half, HalfConvert>
                    : typeof(T) == typeof(BFloat16)
                    ? key.finish ? new Action<Index1D, MergeArgs<BFloat16>>(FinishKernel<BFloat16, BFloat16Convert>) : StepKernel<BFloat16, BFloat16Convert>
                    : throw new NotSupportedException($"attention results are float, ILGPU.Half or BFloat16; got {typeof(T).Name}.");
                return acc.LoadAutoGroupedStreamKernel((Action<Index1D, MergeArgs<T>>)kernel);
            });

        private static void StepKernel<T, TConvert>(Index1D index, MergeArgs<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int h = index % a.Heads;
            int row = index / a.Heads;
            int m = row % a.Rows;
            int b = row / a.Rows;
            long state = ((long)b * a.Heads + h) * a.Rows + m;
            long acc = (long)index.X * a.HeadDim;

            int group = a.HeadGroup > 1 ? a.HeadGroup : 1;
            int sourceHeads = a.Heads / group;
            int sourceHead = h / group;
            int source = a.RowMap.Length == 0 ? m : a.RowMap[(long)m * group + h % group];
            float lse = source < 0 ? float.NegativeInfinity : a.Lse[((long)b * sourceHeads + sourceHead) * a.SourceRows + source];
            if (a.First != 0)
            {
                // The first part starts the state: RowMax = lse_0, RowSum = 1 (or 0 for a row it does not see), Acc = O_0.
                bool seen = lse != float.NegativeInfinity;
                a.RowMax[state] = lse;
                a.RowSum[state] = seen ? 1f : 0f;
                long from = (((long)b * a.SourceRows + source) * sourceHeads + sourceHead) * a.HeadDim;
                for (int d = 0; d < a.HeadDim; d++)
                    a.Acc[acc + d] = seen ? default(TConvert).ToFloat(a.Output[from + d]) : 0f;
                return;
            }
            if (lse == float.NegativeInfinity)
                return;
            // Online softmax over parts: rescale what was summed so far to the new maximum, then add this part.
            float oldMax = a.RowMax[state];
            float newMax = oldMax > lse ? oldMax : lse;
            float alpha = oldMax == float.NegativeInfinity ? 0f : KernelMath.Exp(oldMax - newMax);
            float beta = KernelMath.Exp(lse - newMax);
            a.RowMax[state] = newMax;
            a.RowSum[state] = a.RowSum[state] * alpha + beta;
            long o = (((long)b * a.SourceRows + source) * sourceHeads + sourceHead) * a.HeadDim;
            for (int d = 0; d < a.HeadDim; d++)
                a.Acc[acc + d] = a.Acc[acc + d] * alpha + beta * default(TConvert).ToFloat(a.Output[o + d]);
        }

        private static void FinishKernel<T, TConvert>(Index1D index, MergeArgs<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int h = index % a.Heads;
            int row = index / a.Heads;
            int m = row % a.Rows;
            int b = row / a.Rows;
            long state = ((long)b * a.Heads + h) * a.Rows + m;
            long at = (long)index.X * a.HeadDim;
            float sum = a.RowSum[state];
            float inverse = sum > 0f ? 1f / sum : 0f;
            for (int d = 0; d < a.HeadDim; d++)
                a.Merged[at + d] = default(TConvert).FromFloat(a.Acc[at + d] * inverse);
            a.MergedLse[state] = sum > 0f ? a.RowMax[state] + KernelMath.Log(sum) : float.NegativeInfinity;
        }
    }
}
