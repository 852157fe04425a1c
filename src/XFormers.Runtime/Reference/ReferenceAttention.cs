using System;
using System.Linq;
using XFormers.Dsl;

namespace XFormers.Reference
{
    /// <summary>
    /// Attention in float64 on the host, the plain textbook way: the full score matrix, softmax, then P V,
    /// and the backward by the chain rule through the same matrices. The oracle for tests and conformance.
    /// Independent of the generated kernels: it shares none of their code. A key of weight exactly 0 (masked, or
    /// underflowed) contributes nothing, even against a NaN or infinite value or gradient, so a non-finite input
    /// reaches exactly the rows that can see it (docs/RELIABILITY.md), here as in the kernels.
    /// </summary>
    public static class ReferenceAttention
    {
        /// <summary>A problem in 4-D terms: Q [B, Mq, Hq, K], K/V [B, Mkv, Hkv, K], row-major.</summary>
        public sealed record Problem(
            int Batch, int Mq, int Mkv, int Hq, int Hkv, int HeadDim, double Scale,
            MaskKind Mask = MaskKind.None,
            int[]? QStarts = null,
            int[]? KvStarts = null,
            double[]? Bias = null,
            double[]? AlibiSlopes = null,
            ScoreModFunction? ScoreMod = null,
            MaskModFunction? MaskMod = null,
            int Window = 0)
        {
            /// <summary>The key/value head that query head h reads.</summary>
            public int KvHead(int h) => h / (Hq / Hkv);
        }

        /// <summary>A score mod in float64: the new score from the scaled, biased score (docs/DSL.md).</summary>
        public delegate double ScoreModFunction(double score, int batch, int head, int q, int kv);

        /// <summary>A mask mod: whether the score is kept.</summary>
        public delegate bool MaskModFunction(int batch, int head, int q, int kv);

        /// <summary>O [B, Mq, Hq, K] and Lse [B, Hq, Mq] (-inf for a row that sees no key; its O is 0).</summary>
        public sealed record ForwardResult(double[] Output, double[] Lse);

        /// <summary>dQ, dK, dV and dBias [B, Hq, Mq, Mkv] (dense).</summary>
        public sealed record BackwardResult(double[] Query, double[] Key, double[] Value, double[] Bias);

        /// <summary>Whether key j is visible to query i of head h of batch b under the problem's mask and mask mod.</summary>
        public static bool Visible(Problem p, int b, int h, int i, int j)
        {
            if (!Visible(p, i, j))
                return false;
            if (p.MaskMod is null)
                return true;
            var (batch, q, kv) = ModPositions(p, b, i, j);
            return p.MaskMod(batch, h, q, kv);
        }

        /// <summary>
        /// What a mod sees of score (b, i, j): the batch and the positions within the sequence; for block-diagonal masks the
        /// segment and the positions within it.
        /// </summary>
        public static (int Batch, int Q, int Kv) ModPositions(Problem p, int b, int i, int j)
        {
            if (p.Mask.IsBlockDiagonal())
            {
                int s = Segment(p.QStarts!, i);
                return (s, i - p.QStarts![s], j - p.KvStarts![s]);
            }
            return (b, i, j);
        }

        /// <summary>The score after the score mod (the score itself without one).</summary>
        public static double ModScore(Problem p, int b, int h, int i, int j, double score)
        {
            if (p.ScoreMod is null)
                return score;
            var (batch, q, kv) = ModPositions(p, b, i, j);
            return p.ScoreMod(score, batch, h, q, kv);
        }

        /// <summary>
        /// d ModScore / d score by a central difference in float64 (step 1e-5 · max(1, |score|)): independent of the
        /// generator's symbolic derivative, and accurate to about 1e-9 relative for the smooth mods the tests use.
        /// </summary>
        public static double ModScoreDerivative(Problem p, int b, int h, int i, int j, double score)
        {
            if (p.ScoreMod is null)
                return 1;
            double step = 1e-5 * Math.Max(1, Math.Abs(score));
            return (ModScore(p, b, h, i, j, score + step) - ModScore(p, b, h, i, j, score - step)) / (2 * step);
        }

        /// <summary>Whether key j is visible to query i under the problem's declared mask (mods aside).</summary>
        public static bool Visible(Problem p, int i, int j)
        {
            switch (p.Mask)
            {
                case MaskKind.None:
                    return true;
                case MaskKind.Causal:
                    return j <= i;
                case MaskKind.CausalFromBottomRight:
                    return j <= i + (p.Mkv - p.Mq);
                case MaskKind.CausalLocalFromBottomRight:
                    return LocalAttentionReference.Visible(i, j, p.Mkv - p.Mq, p.Window);
                default:
                    int sq = Segment(p.QStarts!, i), sk = Segment(p.KvStarts!, j);
                    if (sq != sk)
                        return false;
                    if (p.Mask == MaskKind.BlockDiagonal)
                        return true;
                    // Positions within the segment; the diagonal at 0 (top-left) or at the length difference (bottom-right).
                    int qi = i - p.QStarts![sq], kj = j - p.KvStarts![sk];
                    int shift = p.Mask.IsFromBottomRight()
                        ? (p.KvStarts[sk + 1] - p.KvStarts[sk]) - (p.QStarts[sq + 1] - p.QStarts[sq])
                        : 0;
                    return p.Mask.IsLocal() ? LocalAttentionReference.Visible(qi, kj, shift, p.Window) : kj - qi <= shift;
            }
        }

        /// <summary>The additive bias of score (b, h, i, j).</summary>
        public static double BiasAt(Problem p, int b, int h, int i, int j)
        {
            double bias = 0;
            if (p.Bias is not null)
                bias += p.Bias[((long)(b * p.Hq + h) * p.Mq + i) * p.Mkv + j];
            if (p.AlibiSlopes is not null)
            {
                // Positions within the segment for packed rows: what a mod sees too.
                var (_, qi, kj) = ModPositions(p, b, i, j);
                bias += p.AlibiSlopes[h] * (kj - qi);
            }
            return bias;
        }

        /// <summary>S = scale · q kᵀ + bias, masked entries −∞; P = softmax rows (a row with no visible key is all 0).</summary>
        public static double[] Probabilities(Problem p, double[] q, double[] k, int b, int h, out double[] lse)
        {
            var probs = new double[(long)p.Mq * p.Mkv];
            lse = new double[p.Mq];
            int hk = p.KvHead(h);
            for (int i = 0; i < p.Mq; i++)
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < p.Mkv; j++)
                {
                    double s = double.NegativeInfinity;
                    if (Visible(p, b, h, i, j))
                        s = ModScore(p, b, h, i, j, RawScore(p, q, k, b, h, i, j));
                    probs[(long)i * p.Mkv + j] = s;
                    max = Math.Max(max, s);
                }
                // A row that sees no key has weights 0 and LSE −∞. A NaN or +∞ score makes the weight of every key the row
                // sees, and its LSE, NaN (a softmax subtracting its maximum computes ∞ − ∞). Masked keys keep a weight of 0.
                bool seesNothing = double.IsNegativeInfinity(max);
                bool poisoned = double.IsNaN(max) || double.IsPositiveInfinity(max);
                double sum = 0;
                for (int j = 0; j < p.Mkv; j++)
                {
                    double s = probs[(long)i * p.Mkv + j];
                    double e = seesNothing || double.IsNegativeInfinity(s) ? 0 : poisoned ? double.NaN : Math.Exp(s - max);
                    probs[(long)i * p.Mkv + j] = e;
                    sum += e;
                }
                lse[i] = seesNothing ? double.NegativeInfinity : max + Math.Log(sum);
                for (int j = 0; j < p.Mkv; j++)
                    probs[(long)i * p.Mkv + j] = seesNothing || probs[(long)i * p.Mkv + j] == 0 ? 0 : probs[(long)i * p.Mkv + j] / sum;
            }
            return probs;
        }

        /// <summary>scale · q_i · k_j + bias: the score before the score mod.</summary>
        internal static double RawScore(Problem p, double[] q, double[] k, int b, int h, int i, int j)
        {
            int hk = p.KvHead(h);
            double dot = 0;
            for (int d = 0; d < p.HeadDim; d++)
                dot += q[Index(b, i, h, d, p.Mq, p.Hq, p.HeadDim)] * k[Index(b, j, hk, d, p.Mkv, p.Hkv, p.HeadDim)];
            return dot * p.Scale + BiasAt(p, b, h, i, j);
        }

        public static ForwardResult Forward(Problem p, double[] q, double[] k, double[] v)
        {
            Check(p, q, k, v);
            var o = new double[(long)p.Batch * p.Mq * p.Hq * p.HeadDim];
            var lse = new double[(long)p.Batch * p.Hq * p.Mq];
            for (int b = 0; b < p.Batch; b++)
            {
                for (int h = 0; h < p.Hq; h++)
                {
                    int hk = p.KvHead(h);
                    var probs = Probabilities(p, q, k, b, h, out var rowLse);
                    for (int i = 0; i < p.Mq; i++)
                    {
                        lse[((long)b * p.Hq + h) * p.Mq + i] = rowLse[i];
                        for (int d = 0; d < p.HeadDim; d++)
                        {
                            double acc = 0;
                            for (int j = 0; j < p.Mkv; j++)
                            {
                                double prob = probs[(long)i * p.Mkv + j];
                                if (prob != 0)
                                    acc += prob * v[Index(b, j, hk, d, p.Mkv, p.Hkv, p.HeadDim)];
                            }
                            o[Index(b, i, h, d, p.Mq, p.Hq, p.HeadDim)] = acc;
                        }
                    }
                }
            }
            return new ForwardResult(o, lse);
        }

        /// <summary>
        /// dV = Pᵀ dO; dP = dO Vᵀ; dS = P ∘ (dP − rowsum(P ∘ dP)), times the score mod's derivative where there is one;
        /// dQ = scale · dS K; dK = scale · dSᵀ Q; dBias = dS.
        /// </summary>
        public static BackwardResult Backward(Problem p, double[] q, double[] k, double[] v, double[] dO)
        {
            Check(p, q, k, v);
            var dq = new double[q.Length];
            var dk = new double[k.Length];
            var dv = new double[v.Length];
            var dbias = new double[(long)p.Batch * p.Hq * p.Mq * p.Mkv];
            for (int b = 0; b < p.Batch; b++)
            {
                for (int h = 0; h < p.Hq; h++)
                {
                    int hk = p.KvHead(h);
                    var probs = Probabilities(p, q, k, b, h, out _);
                    for (int i = 0; i < p.Mq; i++)
                    {
                        var dP = new double[p.Mkv];
                        double rowDot = 0;
                        for (int j = 0; j < p.Mkv; j++)
                        {
                            double acc = 0;
                            for (int d = 0; d < p.HeadDim; d++)
                                acc += dO[Index(b, i, h, d, p.Mq, p.Hq, p.HeadDim)] * v[Index(b, j, hk, d, p.Mkv, p.Hkv, p.HeadDim)];
                            dP[j] = acc;
                            double prob = probs[(long)i * p.Mkv + j];
                            if (prob != 0)
                                rowDot += prob * acc;
                        }
                        for (int j = 0; j < p.Mkv; j++)
                        {
                            double prob = probs[(long)i * p.Mkv + j];
                            if (prob == 0)
                                continue;
                            // dS of the score before the mod (the chain rule through the mod's derivative); dBias is the same.
                            double dS = prob * (dP[j] - rowDot);
                            if (p.ScoreMod is not null)
                                dS *= ModScoreDerivative(p, b, h, i, j, RawScore(p, q, k, b, h, i, j));
                            dbias[((long)(b * p.Hq + h) * p.Mq + i) * p.Mkv + j] = dS;
                            for (int d = 0; d < p.HeadDim; d++)
                            {
                                long qi = Index(b, i, h, d, p.Mq, p.Hq, p.HeadDim);
                                long kj = Index(b, j, hk, d, p.Mkv, p.Hkv, p.HeadDim);
                                dv[kj] += prob * dO[qi];
                                dq[qi] += p.Scale * dS * k[kj];
                                dk[kj] += p.Scale * dS * q[qi];
                            }
                        }
                    }
                }
            }
            return new BackwardResult(dq, dk, dv, dbias);
        }

        /// <summary>
        /// Builds the reference problem for tensors and an <see cref="AttentionBias"/>, as <see cref="Fmha"/> would
        /// see them (BMGHK inputs flatten to BMHK, a broadcast bias expands to dense).
        /// </summary>
        public static Problem ProblemFor<T>(Tensor<T> query, Tensor<T> key, AttentionBias? attnBias = null, float? scale = null)
            where T : unmanaged
        {
            int rank = query.Rank;
            int batch = query.Dim(0), mq = query.Dim(1), mkv = key.Dim(1), headDim = query.Dim(-1);
            int hq = rank == 5 ? query.Dim(2) * query.Dim(3) : query.Dim(2);
            int hkv = rank == 5 ? key.Dim(2) * key.Dim(3) : key.Dim(2);
            double s = scale ?? 1.0 / Math.Sqrt(headDim);
            double[]? bias = null;
            if (attnBias?.BiasTensor is Tensor<T> tensor)
                bias = ExpandBias(tensor, batch, hq, mq, mkv);
            var segments = attnBias?.Segments;
            return new Problem(
                batch, mq, mkv, hq, hkv, headDim, s,
                attnBias?.Mask ?? MaskKind.None,
                segments?.QSeqStarts.ToArray(),
                segments?.KvSeqStarts.ToArray(),
                bias,
                attnBias?.AlibiSlopes?.Select(x => (double)x).ToArray(),
                Window: attnBias?.Window ?? 0);
        }

        /// <summary>A bias tensor [B|1, Hq|1, Mq|1, Mkv|1] (or 5-D) expanded to dense [B, Hq, Mq, Mkv] doubles.</summary>
        public static double[] ExpandBias<T>(Tensor<T> bias, int batch, int hq, int mq, int mkv)
            where T : unmanaged
        {
            var data = bias.ToDoubleArray();
            int[] dims = bias.Rank == 5
                ? new[] { bias.Dim(0), bias.Dim(1) * bias.Dim(2), bias.Dim(3), bias.Dim(4) }
                : bias.Shape.ToArray();
            var dense = new double[(long)batch * hq * mq * mkv];
            for (int b = 0; b < batch; b++)
                for (int h = 0; h < hq; h++)
                    for (int i = 0; i < mq; i++)
                        for (int j = 0; j < mkv; j++)
                        {
                            long src = (((long)(dims[0] == 1 ? 0 : b) * dims[1] + (dims[1] == 1 ? 0 : h)) * dims[2] + (dims[2] == 1 ? 0 : i)) * dims[3] + (dims[3] == 1 ? 0 : j);
                            dense[(((long)b * hq + h) * mq + i) * mkv + j] = data[src];
                        }
            return dense;
        }

        /// <summary>
        /// The bound on <see cref="ScaledError"/> for kernel outputs against this reference. float32: 1e-5. float16 and
        /// bfloat16: (4 + √K)·u, with u the unit roundoff (2^-11 and 2^-8). Inputs are rounded to the dtype before the
        /// reference sees them, so what remains is the rounding of each output (½ ulp) and, in the gradients, the
        /// rounding of O inside D = rowsum(dO ∘ O), a sum of K products whose error grows like √K.
        /// </summary>
        public static double Tolerance(DType dtype, int headDim = 64) =>
            dtype == DType.Float32 ? 1e-5 : (4 + Math.Sqrt(headDim)) * ElementType.UnitRoundoff(dtype);

        /// <summary>
        /// max |actual − expected| / max(1, ‖expected‖∞), the error measure every check here uses; an infinity must
        /// be matched exactly, and a NaN, or a length mismatch, is an infinite error.
        /// </summary>
        public static double ScaledError(double[] actual, double[] expected)
        {
            ArgumentNullException.ThrowIfNull(actual);
            ArgumentNullException.ThrowIfNull(expected);
            if (actual.Length != expected.Length)
                return double.PositiveInfinity;
            double scale = 1, worst = 0;
            foreach (var e in expected)
            {
                if (double.IsFinite(e))
                    scale = Math.Max(scale, Math.Abs(e));
            }
            for (int i = 0; i < actual.Length; i++)
            {
                double a = actual[i], e = expected[i];
                if (double.IsNaN(a))
                    return double.PositiveInfinity;
                if (double.IsInfinity(e) || double.IsInfinity(a))
                {
                    if (a != e)
                        return double.PositiveInfinity;
                    continue;
                }
                worst = Math.Max(worst, Math.Abs(a - e));
            }
            return worst / scale;
        }

        private static int Segment(int[] starts, int token)
        {
            // The last segment whose start is <= token (empty segments share a start with the next one).
            int lo = 0, hi = starts.Length - 2;
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

        private static long Index(int b, int m, int h, int d, int tokens, int heads, int headDim) =>
            (((long)b * tokens + m) * heads + h) * headDim + d;

        private static void Check(Problem p, double[] q, double[] k, double[] v)
        {
            if (p.Hkv <= 0 || p.Hq % p.Hkv != 0)
                throw new ArgumentException($"Hkv = {p.Hkv} must divide Hq = {p.Hq}.", nameof(p));
            if (q.LongLength != (long)p.Batch * p.Mq * p.Hq * p.HeadDim)
                throw new ArgumentException("q does not match the problem's shape.", nameof(q));
            if (k.LongLength != (long)p.Batch * p.Mkv * p.Hkv * p.HeadDim || v.LongLength != k.LongLength)
                throw new ArgumentException("k or v does not match the problem's shape.", nameof(k));
        }
    }
}
