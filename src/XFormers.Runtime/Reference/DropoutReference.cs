using System;

namespace XFormers.Reference
{
    /// <summary>
    /// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the counter-based generator
    /// of cuRAND, PyTorch and FlashAttention's dropout: four 32-bit words from a 128-bit counter and a 64-bit key, with no
    /// state, so a backward pass regenerates the forward's dropout mask from the seed alone, on any device.
    /// </summary>
    public static class Philox
    {
        private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57;
        private const uint W0 = 0x9E3779B9, W1 = 0xBB67AE85;

        /// <summary>Ten rounds of Philox4x32 on <paramref name="counter"/> under <paramref name="key"/>.</summary>
        public static (uint X0, uint X1, uint X2, uint X3) Generate((uint C0, uint C1, uint C2, uint C3) counter, (uint K0, uint K1) key)
        {
            var (c0, c1, c2, c3) = counter;
            var (k0, k1) = key;
            for (int round = 0; round < 10; round++)
            {
                if (round > 0)
                {
                    k0 += W0;
                    k1 += W1;
                }
                ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
                uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0, hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
                (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
            }
            return (c0, c1, c2, c3);
        }
    }

    /// <summary>
    /// The dropout mask attention with dropout will use, and attention with it in float64: the oracle for the kernels'
    /// dropout. Score (b, h, i, j) is kept when word <c>j % 4</c> of Philox(counter = (j / 4, i, h, b), key = seed) is at
    /// least ⌊p · 2^32⌋ (probability 1 − p, up to 2^-32), and a kept probability is scaled by 1 / (1 − p). The LSE is that
    /// of the scores before dropout, so the backward's P = exp(S − LSE) and D = rowsum(dO ∘ O) are unchanged.
    /// </summary>
    public static class DropoutReference
    {
        /// <summary>Whether score (b, h, i, j) survives dropout with probability <paramref name="p"/> under <paramref name="seed"/>.</summary>
        public static bool Keep(ulong seed, double p, int b, int h, int i, int j)
        {
            if (p <= 0)
                return true;
            if (p >= 1)
                return false;
            var words = Philox.Generate(((uint)(j >> 2), (uint)i, (uint)h, (uint)b), ((uint)seed, (uint)(seed >> 32)));
            uint word = (j & 3) switch { 0 => words.X0, 1 => words.X1, 2 => words.X2, _ => words.X3 };
            return word >= Threshold(p);
        }

        /// <summary>⌊p · 2^32⌋: a 32-bit word below it drops the score.</summary>
        public static uint Threshold(double p) => (uint)Math.Min(uint.MaxValue, Math.Floor(p * 4294967296.0));

        /// <summary>O = (P ∘ M / (1 − p)) V with M the mask of <see cref="Keep"/>; the LSE of the scores before dropout.</summary>
        public static ReferenceAttention.ForwardResult Forward(ReferenceAttention.Problem problem, double[] q, double[] k, double[] v, double p, ulong seed)
        {
            var pr = problem;
            var o = new double[(long)pr.Batch * pr.Mq * pr.Hq * pr.HeadDim];
            var lse = new double[(long)pr.Batch * pr.Hq * pr.Mq];
            for (int b = 0; b < pr.Batch; b++)
            {
                for (int h = 0; h < pr.Hq; h++)
                {
                    var probs = Dropped(pr, q, k, b, h, p, seed, out var rowLse);
                    int hk = pr.KvHead(h);
                    for (int i = 0; i < pr.Mq; i++)
                    {
                        lse[((long)b * pr.Hq + h) * pr.Mq + i] = rowLse[i];
                        for (int d = 0; d < pr.HeadDim; d++)
                        {
                            double acc = 0;
                            for (int j = 0; j < pr.Mkv; j++)
                                acc += probs[(long)i * pr.Mkv + j] * v[Index(b, j, hk, d, pr.Mkv, pr.Hkv, pr.HeadDim)];
                            o[Index(b, i, h, d, pr.Mq, pr.Hq, pr.HeadDim)] = acc;
                        }
                    }
                }
            }
            return new ReferenceAttention.ForwardResult(o, lse);
        }

        /// <summary>
        /// With Z = P ∘ M / (1 − p): dV = Zᵀ dO; dP = (dO Vᵀ) ∘ M / (1 − p); dS = P ∘ (dP − rowsum(P ∘ dP)), times the score
        /// mod's derivative where there is one; dQ = scale · dS K; dK = scale · dSᵀ Q; dBias = dS. rowsum(P ∘ dP) =
        /// rowsum(dO ∘ O), as without dropout.
        /// </summary>
        public static ReferenceAttention.BackwardResult Backward(ReferenceAttention.Problem problem, double[] q, double[] k, double[] v, double[] dO, double p, ulong seed)
        {
            var pr = problem;
            var dq = new double[q.Length];
            var dk = new double[k.Length];
            var dv = new double[v.Length];
            var dbias = new double[(long)pr.Batch * pr.Hq * pr.Mq * pr.Mkv];
            double keepScale = p >= 1 ? 0 : 1 / (1 - Math.Max(0, p));
            for (int b = 0; b < pr.Batch; b++)
            {
                for (int h = 0; h < pr.Hq; h++)
                {
                    int hk = pr.KvHead(h);
                    var probs = ReferenceAttention.Probabilities(pr, q, k, b, h, out _);
                    for (int i = 0; i < pr.Mq; i++)
                    {
                        var dP = new double[pr.Mkv];
                        double rowDot = 0;
                        for (int j = 0; j < pr.Mkv; j++)
                        {
                            double acc = 0;
                            for (int d = 0; d < pr.HeadDim; d++)
                                acc += dO[Index(b, i, h, d, pr.Mq, pr.Hq, pr.HeadDim)] * v[Index(b, j, hk, d, pr.Mkv, pr.Hkv, pr.HeadDim)];
                            dP[j] = Keep(seed, p, b, h, i, j) ? acc * keepScale : 0;
                            rowDot += probs[(long)i * pr.Mkv + j] * dP[j];
                        }
                        for (int j = 0; j < pr.Mkv; j++)
                        {
                            double prob = probs[(long)i * pr.Mkv + j];
                            double z = Keep(seed, p, b, h, i, j) ? prob * keepScale : 0;
                            double dS = prob * (dP[j] - rowDot);
                            if (pr.ScoreMod is not null && prob != 0)
                                dS *= ReferenceAttention.ModScoreDerivative(pr, b, h, i, j, ReferenceAttention.RawScore(pr, q, k, b, h, i, j));
                            dbias[((long)(b * pr.Hq + h) * pr.Mq + i) * pr.Mkv + j] = dS;
                            for (int d = 0; d < pr.HeadDim; d++)
                            {
                                long qi = Index(b, i, h, d, pr.Mq, pr.Hq, pr.HeadDim);
                                long kj = Index(b, j, hk, d, pr.Mkv, pr.Hkv, pr.HeadDim);
                                dv[kj] += z * dO[qi];
                                dq[qi] += pr.Scale * dS * k[kj];
                                dk[kj] += pr.Scale * dS * q[qi];
                            }
                        }
                    }
                }
            }
            return new ReferenceAttention.BackwardResult(dq, dk, dv, dbias);
        }

        private static double[] Dropped(ReferenceAttention.Problem pr, double[] q, double[] k, int b, int h, double p, ulong seed, out double[] lse)
        {
            var probs = ReferenceAttention.Probabilities(pr, q, k, b, h, out lse);
            double keepScale = p >= 1 ? 0 : 1 / (1 - Math.Max(0, p));
            for (int i = 0; i < pr.Mq; i++)
            {
                for (int j = 0; j < pr.Mkv; j++)
                    probs[(long)i * pr.Mkv + j] = Keep(seed, p, b, h, i, j) ? probs[(long)i * pr.Mkv + j] * keepScale : 0;
            }
            return probs;
        }

        private static long Index(int b, int m, int h, int d, int tokens, int heads, int headDim) =>
            (((long)b * tokens + m) * heads + h) * headDim + d;
    }
}
