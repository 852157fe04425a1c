using System;
using System.Linq;
using XFormers.Dsl;

namespace XFormers.Bench
{
    /// <summary>One attention problem (shapes, mask, bias), and the seeded inputs for it.</summary>
    internal sealed record Case(
        int Batch, int Mq, int Mkv, int Hq, int Hkv, int HeadDim, MaskKind Mask, BiasKind Bias,
        int[]? QSeqlens = null, int[]? KvSeqlens = null, bool BiasRequiresGrad = false, int Seed = 7, int Window = 0)
    {
        public override string ToString() =>
            (QSeqlens is null
                ? $"B{Batch} Mq{Mq} Mkv{Mkv} H{Hq}/{Hkv} K{HeadDim}"
                : $"packed q[{string.Join(",", QSeqlens)}] kv[{string.Join(",", KvSeqlens ?? QSeqlens)}] H{Hq}/{Hkv} K{HeadDim}") +
            (Mask.IsLocal() ? $" window {Window}" : "");

        /// <summary>The window the conformance gives local masks: a third of the keys, so bands cut several tiles.</summary>
        public static int WindowFor(int mkv) => Math.Max(1, mkv / 3);

        /// <summary>A case of the variant's mask and bias: packed segments for block-diagonal masks, else Batch × M.</summary>
        public static Case For(AttentionVariant v, int batch, int mq, int mkv, int hq, int hkv, int seed = 7)
        {
            int window = v.Mask.IsLocal() ? WindowFor(mkv) : 0;
            if (!v.Mask.IsBlockDiagonal())
                return new Case(batch, mq, mkv, hq, hkv, v.HeadDim, v.Mask, v.Bias, BiasRequiresGrad: v.BiasGradient, Seed: seed, Window: window);
            // Ragged segments, one of them empty on the query side, totalling about batch × M tokens.
            int[] q = Split(batch * mq, seed), kv = Split(batch * mkv, seed + 1);
            q[1] = 0;
            q[0] = batch * mq - q.Skip(1).Sum();
            return new Case(1, q.Sum(), kv.Sum(), hq, hkv, v.HeadDim, v.Mask, v.Bias, q, kv, v.BiasGradient, seed, window);
        }

        private static int[] Split(int total, int seed)
        {
            var random = new Random(seed);
            var parts = new int[4];
            int left = total;
            for (int s = 0; s < parts.Length - 1; s++)
            {
                parts[s] = random.Next(1, Math.Max(2, left / 2));
                left -= parts[s];
            }
            parts[^1] = left;
            return parts;
        }

        /// <summary>Seeded q, k, v, dO and the attention bias (the tensor bias has a few −∞ entries).</summary>
        public Inputs<T> Create<T>(XFormersContext context)
            where T : unmanaged
        {
            int[] qShape = { Batch, Mq, Hq, HeadDim }, kShape = { Batch, Mkv, Hkv, HeadDim };
            var inputs = new Inputs<T>
            {
                Q = Tensor<T>.RandomNormal(context, Seed, 1f, qShape),
                K = Tensor<T>.RandomNormal(context, Seed + 1, 1f, kShape),
                V = Tensor<T>.RandomNormal(context, Seed + 2, 1f, kShape),
                dO = Tensor<T>.RandomNormal(context, Seed + 3, 1f, qShape),
            };
            if (Bias == BiasKind.Tensor)
            {
                var values = HostRandom.Normal(Seed + 4, Batch * Hq * Mq * Mkv, 1f);
                for (int e = 5; e < values.Length; e += 23)
                    values[e] = float.NegativeInfinity;
                inputs.BiasTensor = Tensor<T>.FromFloats(context, values, Batch, Hq, Mq, Mkv);
            }
            inputs.AttnBias = AttnBias(inputs.BiasTensor);
            return inputs;
        }

        /// <summary>The same inputs widened to float32 (exactly), for the naive reference: its S and P then carry fp32 rounding, not the dtype's.</summary>
        public Inputs<float> Widen<T>(XFormersContext context, Inputs<T> x)
            where T : unmanaged
        {
            static Tensor<float> W(XFormersContext ctx, Tensor<T> t) => Tensor<float>.FromFloats(ctx, t.ToFloatArray(), t.Shape.ToArray());
            var wide = new Inputs<float> { Q = W(context, x.Q), K = W(context, x.K), V = W(context, x.V), dO = W(context, x.dO) };
            wide.BiasTensor = x.BiasTensor is null ? null : W(context, x.BiasTensor);
            wide.AttnBias = AttnBias(wide.BiasTensor);
            return wide;
        }

        private AttentionBias? AttnBias<T>(Tensor<T>? biasTensor)
            where T : unmanaged
        {
            AttentionBias? mask = AttentionBias.ForMaskKind(Mask, QSeqlens, KvSeqlens, Window);
            return Bias switch
            {
                BiasKind.Tensor => (mask ?? NoMask.Instance).WithTensorBias(biasTensor!, BiasRequiresGrad),
                BiasKind.Alibi => (mask ?? NoMask.Instance).WithAlibi(AlibiBias.DefaultSlopes(Hq)),
                _ => mask,
            };
        }

        /// <summary>Forward FLOPs (4 · Mq · Mkv · K per head, counting only visible pairs for causal and block-diagonal masks).</summary>
        public double ForwardFlops()
        {
            double pairs = 0;
            if (Mask.IsLocal() || Mask == MaskKind.BlockDiagonalCausalFromBottomRight)
            {
                // Count the visible pairs row by row: the band's rows see min(window, keys up to the diagonal).
                int[] q = QSeqlens ?? new[] { Mq }, kv = KvSeqlens ?? QSeqlens ?? new[] { Mkv };
                for (int s = 0; s < q.Length; s++)
                {
                    int shift = Mask.IsFromBottomRight() ? kv[s] - q[s] : 0;
                    for (int i = 0; i < q[s]; i++)
                    {
                        int hi = Math.Clamp(i + shift + 1, 0, kv[s]);
                        int lo = Mask.IsLocal() ? Math.Clamp(i + shift + 1 - Window, 0, kv[s]) : 0;
                        pairs += hi - lo;
                    }
                }
                return 4 * pairs * (QSeqlens is null ? Batch : 1) * Hq * HeadDim;
            }
            if (QSeqlens is null)
            {
                pairs = (double)Mq * Mkv;
                if (Mask is MaskKind.Causal or MaskKind.CausalFromBottomRight)
                    pairs *= 0.5;
                pairs *= Batch;
            }
            else
            {
                var kv = KvSeqlens ?? QSeqlens;
                for (int s = 0; s < QSeqlens.Length; s++)
                    pairs += (double)QSeqlens[s] * kv[s] * (Mask == MaskKind.BlockDiagonalCausal ? 0.5 : 1);
            }
            return 4 * pairs * Hq * HeadDim;
        }
    }

    /// <summary>The tensors of one case; disposes them together.</summary>
    internal sealed class Inputs<T> : IDisposable
        where T : unmanaged
    {
        public Tensor<T> Q = null!;
        public Tensor<T> K = null!;
        public Tensor<T> V = null!;
        public Tensor<T> dO = null!;
        public Tensor<T>? BiasTensor;
        public AttentionBias? AttnBias;

        public void Dispose()
        {
            Q.Dispose();
            K.Dispose();
            V.Dispose();
            dO.Dispose();
            BiasTensor?.Dispose();
        }
    }
}
