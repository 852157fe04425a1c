using System;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;
using XFormers.Kernels;
using Half = ILGPU.Half;

namespace XFormers.Reference
{
    /// <summary>
    /// Attention the materializing way, on the accelerator: the seed's <c>vanilla_attention</c> generalized to every
    /// mask, bias and grouping the generated kernels take. S = scale · Q Kᵀ + bias and P = softmax(S) are stored as
    /// [B, Hq, Mq, Mkv] tensors in the input dtype (arithmetic in float, one rounding per stored element, like
    /// PyTorch's eager ops), then O = P V. The backward recomputes S and P and stores dS = P ∘ (dP − rowsum(P ∘ dP)).
    /// A reference for large shapes (where the fp64 host reference is too slow) and the baseline of the benchmarks;
    /// it shares no code with the generated kernels. Memory grows with Mq · Mkv.
    /// </summary>
    public static class NaiveAttention
    {
        /// <summary>O and the log-sum-exp [B, Hq, Mq] (-inf for a row that sees no key).</summary>
        public static AttentionOutput<T> Forward<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias = null, float? scale = null)
            where T : unmanaged
        {
            var p = AttentionProblem.Create(query, key, value, attnBias, scale);
            var context = query.Context;
            var output = Tensor<T>.Zeros(context, p.QueryShape);
            var lse = Tensor<float>.Empty(context, p.LseShape);
            if (p.IsEmpty)
                return new AttentionOutput<T>(output, lse);
            using var scores = Tensor<T>.Empty(context, ScoreShape(p));
            using var probs = Tensor<T>.Empty(context, ScoreShape(p));
            var args = Arguments(p, query, key, value, scores, probs);
            args.A.O = output.View;
            args.A.Lse = lse.View;
            var runner = RunnerFor<T>();
            runner.Forward(context.Accelerator, p, args);
            context.Synchronize();
            return new AttentionOutput<T>(output, lse);
        }

        /// <summary>dQ, dK, dV, and dBias [B, Hq, Mq, Mkv] when the tensor bias requires a gradient.</summary>
        public static AttentionGradients<T> Backward<T>(
            Tensor<T> gradOutput, Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias = null, float? scale = null)
            where T : unmanaged
        {
            var p = AttentionProblem.Create(query, key, value, attnBias, scale);
            p.CheckTensor(gradOutput, p.QueryShape, nameof(gradOutput));
            var context = query.Context;
            var dq = Tensor<T>.Zeros(context, p.QueryShape);
            var dk = Tensor<T>.Zeros(context, p.KeyShape);
            var dv = Tensor<T>.Zeros(context, p.KeyShape);
            var dbias = p.NeedsBiasGradient ? Tensor<T>.Zeros(context, ScoreShape(p)) : null;
            if (p.IsEmpty || p.Mkv == 0)
                return new AttentionGradients<T>(dq, dk, dv, dbias);
            using var scores = Tensor<T>.Empty(context, ScoreShape(p));
            using var probs = Tensor<T>.Empty(context, ScoreShape(p));
            using var lse = Tensor<float>.Empty(context, p.LseShape);
            using var output = Tensor<T>.Empty(context, p.QueryShape);
            var args = Arguments(p, query, key, value, scores, probs);
            args.A.O = output.View;
            args.A.Lse = lse.View;
            args.A.dO = gradOutput.View;
            args.A.dQ = dq.View;
            args.A.dK = dk.View;
            args.A.dV = dv.View;
            if (dbias is not null)
                args.A.dBias = dbias.View;
            var runner = RunnerFor<T>();
            runner.Forward(context.Accelerator, p, args);
            runner.Backward(context.Accelerator, p, args);
            context.Synchronize();
            return new AttentionGradients<T>(dq, dk, dv, dbias);
        }

        /// <summary>Bytes of the [B, Hq, Mq, Mkv] buffers a call holds at once: S and P (the backward's dS reuses S).</summary>
        public static long WorkspaceBytes(int batch, int heads, int mq, int mkv, DType dtype) =>
            2L * batch * heads * mq * mkv * ElementType.SizeOf(dtype);

        private static int[] ScoreShape(AttentionProblem p) => new[] { p.Batch, p.Hq, p.Mq, p.Mkv };

        private static NaiveArgs<T> Arguments<T>(AttentionProblem p, Tensor<T> query, Tensor<T> key, Tensor<T> value, Tensor<T> scores, Tensor<T> probs)
            where T : unmanaged => new()
            {
                A = Fmha.Arguments(p, query, key, value),
                S = scores.View,
                P = probs.View,
                Mask = (int)p.Mask,
                Bias = (int)p.Bias,
                HeadDim = p.HeadDim,
            };

        private static IRunner<T> RunnerFor<T>()
            where T : unmanaged
        {
            if (typeof(T) == typeof(float))
                return (IRunner<T>)(object)Runner<float, FloatConvert>.Instance;
            if (typeof(T) == typeof(Half))
                return (IRunner<T>)(object)Runner<Half, HalfConvert>.Instance;
            if (typeof(T) == typeof(BFloat16))
                return (IRunner<T>)(object)Runner<BFloat16, BFloat16Convert>.Instance;
            throw new NotSupportedException($"NaiveAttention takes float, ILGPU.Half or XFormers.BFloat16 tensors; {typeof(T).FullName} is not one of them (Fmha takes System.Half too).");
        }

        /// <summary>The attention arguments plus the materialized score and probability matrices [B, Hq, Mq, Mkv].</summary>
        internal struct NaiveArgs<T>
            where T : unmanaged
        {
            public AttentionArgs<T> A;
            public ArrayView<T> S;
            public ArrayView<T> P;
            /// <summary>A <see cref="MaskKind"/> value.</summary>
            public int Mask;
            /// <summary>A <see cref="BiasKind"/> value.</summary>
            public int Bias;
            public int HeadDim;
            /// <summary>Score rows per grid row (the score kernels' y dimension must stay under 65535).</summary>
            public int RowsPerY;
        }

        private interface IRunner<T>
            where T : unmanaged
        {
            void Forward(Accelerator accelerator, AttentionProblem p, NaiveArgs<T> args);

            void Backward(Accelerator accelerator, AttentionProblem p, NaiveArgs<T> args);
        }

        /// <summary>The kernels for one element type; each thread computes one stored element (or one row for the softmax).</summary>
        private sealed class Runner<T, TConvert> : IRunner<T>
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            public static readonly Runner<T, TConvert> Instance = new();

            public void Forward(Accelerator accelerator, AttentionProblem p, NaiveArgs<T> args)
            {
                var k = Load(accelerator);
                int rows = p.Batch * p.Hq * p.Mq;
                k.Scores(ScoreGrid(p, ref args), args);
                k.Softmax(rows, args);
                k.Output(new Index2D(p.Hq * p.HeadDim, p.Batch * p.Mq), args);
            }

            public void Backward(Accelerator accelerator, AttentionProblem p, NaiveArgs<T> args)
            {
                var k = Load(accelerator);
                int rows = p.Batch * p.Hq * p.Mq;
                k.GradProbs(ScoreGrid(p, ref args), args);
                k.GradScores(rows, args);
                k.GradQuery(new Index2D(p.Hq * p.HeadDim, p.Batch * p.Mq), args);
                k.GradKeyValue(new Index2D(p.Hkv * p.HeadDim, p.Batch * p.Mkv), args);
            }

            /// <summary>
            /// One thread per score: x = j + Mkv · (row % RowsPerY), y = row / RowsPerY, so y stays under CUDA's 65535
            /// while x keeps consecutive threads on consecutive keys.
            /// </summary>
            private static Index2D ScoreGrid(AttentionProblem p, ref NaiveArgs<T> args)
            {
                int rows = p.Batch * p.Hq * p.Mq;
                args.RowsPerY = (rows + 65534) / 65535;
                return new Index2D(p.Mkv * args.RowsPerY, (rows + args.RowsPerY - 1) / args.RowsPerY);
            }

            private static bool ScoreIndex(Index2D index, in NaiveArgs<T> n, out int row, out int j)
            {
                j = index.X % n.A.Mkv;
                row = index.Y * n.RowsPerY + index.X / n.A.Mkv;
                return row < n.A.Batch * n.A.Hq * n.A.Mq;
            }

            private Loaded Load(Accelerator accelerator) => KernelCache.GetOrAdd(accelerator, this, static (acc, _) => new Loaded(
                acc.LoadAutoGroupedStreamKernel<Index2D, NaiveArgs<T>>(ScoresKernel),
                acc.LoadAutoGroupedStreamKernel<Index1D, NaiveArgs<T>>(SoftmaxKernel),
                acc.LoadAutoGroupedStreamKernel<Index2D, NaiveArgs<T>>(OutputKernel),
                acc.LoadAutoGroupedStreamKernel<Index2D, NaiveArgs<T>>(GradProbsKernel),
                acc.LoadAutoGroupedStreamKernel<Index1D, NaiveArgs<T>>(GradScoresKernel),
                acc.LoadAutoGroupedStreamKernel<Index2D, NaiveArgs<T>>(GradQueryKernel),
                acc.LoadAutoGroupedStreamKernel<Index2D, NaiveArgs<T>>(GradKeyValueKernel)));

            private sealed record Loaded(
                Action<Index2D, NaiveArgs<T>> Scores,
                Action<Index1D, NaiveArgs<T>> Softmax,
                Action<Index2D, NaiveArgs<T>> Output,
                Action<Index2D, NaiveArgs<T>> GradProbs,
                Action<Index1D, NaiveArgs<T>> GradScores,
                Action<Index2D, NaiveArgs<T>> GradQuery,
                Action<Index2D, NaiveArgs<T>> GradKeyValue);

            private static int Segment(ArrayView<int> starts, int token)
            {
                int lo = 0, hi = (int)starts.Length - 2;
                while (lo < hi)
                {
                    int mid = (lo + hi + 1) / 2;
                    if (starts[mid] <= token)
                        lo = mid;
                    else
                        hi = mid - 1;
                }
                return lo;
            }

            /// <summary>Visibility of key j to query i; segments found by binary search over the starts (not the per-token ids the kernels use).</summary>
            private static bool Visible(in NaiveArgs<T> n, int i, int j)
            {
                if (n.Mask == (int)MaskKind.None)
                    return true;
                if (n.Mask == (int)MaskKind.Causal)
                    return j <= i;
                if (n.Mask == (int)MaskKind.CausalFromBottomRight)
                    return j <= i + n.A.Mkv - n.A.Mq;
                if (n.Mask == (int)MaskKind.CausalLocalFromBottomRight)
                    return InWindow(n, j - i - (n.A.Mkv - n.A.Mq));
                int sq = Segment(n.A.QStart, i), sk = Segment(n.A.KvStart, j);
                if (sq != sk)
                    return false;
                if (n.Mask == (int)MaskKind.BlockDiagonal)
                    return true;
                bool bottomRight = n.Mask == (int)MaskKind.BlockDiagonalCausalFromBottomRight || n.Mask == (int)MaskKind.BlockDiagonalCausalLocalFromBottomRight;
                int diagonal = bottomRight ? n.A.KvStart[sq + 1] - n.A.QStart[sq + 1] : n.A.KvStart[sq] - n.A.QStart[sq];
                return InWindow(n, j - i - diagonal);
            }

            /// <summary>Whether a key at <paramref name="offset"/> = (j − i) − diagonal is visible: on or below the diagonal, and inside a local mask's window.</summary>
            private static bool InWindow(in NaiveArgs<T> n, int offset)
            {
                bool local = n.Mask == (int)MaskKind.CausalLocalFromBottomRight || n.Mask == (int)MaskKind.BlockDiagonalCausalLocal
                    || n.Mask == (int)MaskKind.BlockDiagonalCausalLocalFromBottomRight;
                return offset <= 0 && (!local || offset > -n.A.Window);
            }

            private static float BiasAt(in NaiveArgs<T> n, int b, int h, int i, int j)
            {
                if (n.Bias == (int)BiasKind.Tensor)
                    return default(TConvert).ToFloat(n.A.Bias[b * n.A.BiasStrideB + h * n.A.BiasStrideH + i * n.A.BiasStrideM + j * n.A.BiasStrideN]);
                if (n.Bias == (int)BiasKind.Alibi)
                {
                    int qi = i, kj = j;
                    if (n.Mask != (int)MaskKind.None && n.Mask != (int)MaskKind.Causal && n.Mask != (int)MaskKind.CausalFromBottomRight
                        && n.Mask != (int)MaskKind.CausalLocalFromBottomRight)
                    {
                        int s = Segment(n.A.QStart, i);
                        qi = i - n.A.QStart[s];
                        kj = j - n.A.KvStart[s];
                    }
                    return n.A.AlibiSlopes[h] * (kj - qi);
                }
                return 0f;
            }

            private static long TokenOffset(int b, int m, int tokens, int heads, int h, int headDim) =>
                (((long)b * tokens + m) * heads + h) * headDim;

            /// <summary>S_ij = scale · q_i · k_j + bias_ij, or −∞ where the mask hides key j. Index: see ScoreGrid.</summary>
            private static void ScoresKernel(Index2D index, NaiveArgs<T> n)
            {
                var a = n.A;
                if (!ScoreIndex(index, n, out int row, out int j))
                    return;
                int i = row % a.Mq, h = row / a.Mq % a.Hq, b = row / a.Mq / a.Hq;
                float score = float.NegativeInfinity;
                if (Visible(n, i, j))
                {
                    int headDim = n.HeadDim;
                    long q = TokenOffset(b, i, a.Mq, a.Hq, h, headDim);
                    long k = TokenOffset(b, j, a.Mkv, a.Hkv, h / a.GroupSize, headDim);
                    float dot = 0f;
                    for (int d = 0; d < headDim; d++)
                        dot += default(TConvert).ToFloat(a.Q[q + d]) * default(TConvert).ToFloat(a.K[k + d]);
                    score = dot * a.Scale + BiasAt(n, b, h, i, j);
                }
                n.S[(long)row * a.Mkv + j] = default(TConvert).FromFloat(score);
            }

            /// <summary>P = softmax of each row of S (as stored); Lse = max + log Σ exp(S − max). A row with no finite score gets P = 0, Lse = −∞.</summary>
            private static void SoftmaxKernel(Index1D row, NaiveArgs<T> n)
            {
                int mkv = n.A.Mkv;
                long start = (long)(int)row * mkv;
                float max = float.NegativeInfinity;
                for (int j = 0; j < mkv; j++)
                    max = System.Math.Max(max, default(TConvert).ToFloat(n.S[start + j]));
                float sum = 0f;
                if (max != float.NegativeInfinity)
                {
                    for (int j = 0; j < mkv; j++)
                        sum += System.MathF.Exp(default(TConvert).ToFloat(n.S[start + j]) - max);
                }
                float inverse = sum > 0f ? 1f / sum : 0f;
                for (int j = 0; j < mkv; j++)
                {
                    float e = sum > 0f ? System.MathF.Exp(default(TConvert).ToFloat(n.S[start + j]) - max) : 0f;
                    n.P[start + j] = default(TConvert).FromFloat(e * inverse);
                }
                n.A.Lse[row] = sum > 0f ? max + System.MathF.Log(sum) : float.NegativeInfinity;
            }

            /// <summary>O_id = Σ_j P_ij v_jd. Index: ((h, d), (b, i)).</summary>
            private static void OutputKernel(Index2D index, NaiveArgs<T> n)
            {
                var a = n.A;
                int headDim = n.HeadDim;
                int d = index.X % headDim, h = index.X / headDim;
                int i = index.Y % a.Mq, b = index.Y / a.Mq;
                long p = ((long)(b * a.Hq + h) * a.Mq + i) * a.Mkv;
                float acc = 0f;
                for (int j = 0; j < a.Mkv; j++)
                    acc += default(TConvert).ToFloat(n.P[p + j]) * default(TConvert).ToFloat(a.V[TokenOffset(b, j, a.Mkv, a.Hkv, h / a.GroupSize, headDim) + d]);
                a.O[TokenOffset(b, i, a.Mq, a.Hq, h, headDim) + d] = default(TConvert).FromFloat(acc);
            }

            /// <summary>dP_ij = dO_i · v_j, stored in the S buffer (S is no longer needed). Index: see ScoreGrid.</summary>
            private static void GradProbsKernel(Index2D index, NaiveArgs<T> n)
            {
                var a = n.A;
                int headDim = n.HeadDim;
                if (!ScoreIndex(index, n, out int row, out int j))
                    return;
                int i = row % a.Mq, h = row / a.Mq % a.Hq, b = row / a.Mq / a.Hq;
                long o = TokenOffset(b, i, a.Mq, a.Hq, h, headDim);
                long v = TokenOffset(b, j, a.Mkv, a.Hkv, h / a.GroupSize, headDim);
                float dot = 0f;
                for (int d = 0; d < headDim; d++)
                    dot += default(TConvert).ToFloat(a.dO[o + d]) * default(TConvert).ToFloat(a.V[v + d]);
                n.S[(long)row * a.Mkv + j] = default(TConvert).FromFloat(dot);
            }

            /// <summary>dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik), over dP in the S buffer; dBias = dS when asked for.</summary>
            private static void GradScoresKernel(Index1D row, NaiveArgs<T> n)
            {
                int mkv = n.A.Mkv;
                long start = (long)(int)row * mkv;
                float rowDot = 0f;
                for (int j = 0; j < mkv; j++)
                    rowDot += default(TConvert).ToFloat(n.P[start + j]) * default(TConvert).ToFloat(n.S[start + j]);
                bool writeBias = n.A.dBias.Length > 0;
                for (int j = 0; j < mkv; j++)
                {
                    float dS = default(TConvert).ToFloat(n.P[start + j]) * (default(TConvert).ToFloat(n.S[start + j]) - rowDot);
                    var stored = default(TConvert).FromFloat(dS);
                    n.S[start + j] = stored;
                    if (writeBias)
                        n.A.dBias[start + j] = stored;
                }
            }

            /// <summary>dQ_id = scale · Σ_j dS_ij k_jd. Index: ((h, d), (b, i)).</summary>
            private static void GradQueryKernel(Index2D index, NaiveArgs<T> n)
            {
                var a = n.A;
                int headDim = n.HeadDim;
                int d = index.X % headDim, h = index.X / headDim;
                int i = index.Y % a.Mq, b = index.Y / a.Mq;
                long s = ((long)(b * a.Hq + h) * a.Mq + i) * a.Mkv;
                float acc = 0f;
                for (int j = 0; j < a.Mkv; j++)
                    acc += default(TConvert).ToFloat(n.S[s + j]) * default(TConvert).ToFloat(a.K[TokenOffset(b, j, a.Mkv, a.Hkv, h / a.GroupSize, headDim) + d]);
                a.dQ[TokenOffset(b, i, a.Mq, a.Hq, h, headDim) + d] = default(TConvert).FromFloat(acc * a.Scale);
            }

            /// <summary>dK_jd = scale · Σ_h Σ_i dS_ij q_id and dV_jd = Σ_h Σ_i P_ij dO_id over the query heads of KV head hk. Index: ((hk, d), (b, j)).</summary>
            private static void GradKeyValueKernel(Index2D index, NaiveArgs<T> n)
            {
                var a = n.A;
                int headDim = n.HeadDim;
                int d = index.X % headDim, hk = index.X / headDim;
                int j = index.Y % a.Mkv, b = index.Y / a.Mkv;
                float dk = 0f, dv = 0f;
                for (int g = 0; g < a.GroupSize; g++)
                {
                    int h = hk * a.GroupSize + g;
                    long s = (long)(b * a.Hq + h) * a.Mq * a.Mkv + j;
                    for (int i = 0; i < a.Mq; i++)
                    {
                        long q = TokenOffset(b, i, a.Mq, a.Hq, h, headDim) + d;
                        dk += default(TConvert).ToFloat(n.S[s + (long)i * a.Mkv]) * default(TConvert).ToFloat(a.Q[q]);
                        dv += default(TConvert).ToFloat(n.P[s + (long)i * a.Mkv]) * default(TConvert).ToFloat(a.dO[q]);
                    }
                }
                long kv = TokenOffset(b, j, a.Mkv, a.Hkv, hk, headDim) + d;
                a.dK[kv] = default(TConvert).FromFloat(dk * a.Scale);
                a.dV[kv] = default(TConvert).FromFloat(dv);
            }
        }
    }
}
