using System;
using System.Globalization;
using System.IO;
using System.Linq;
using XFormers.Dsl;
using XFormers.Reference;

namespace XFormers.Bench
{
    /// <summary>
    /// Score and mask mods on the device (issue 11): the cases of FlexAttention's table, declared as a user would, first
    /// checked against the fp64 reference with the same mods (forward and gradients, small shapes), then timed at
    /// FlexAttention's shapes (mods.csv; scripts/attention_torch.py's <c>flex</c> step times FlexAttention on the same cases).
    /// </summary>
    internal static partial class Mods
    {
        public struct Args
        {
            public int Window;
            public int Prefix;
            public Tensor<int> DocId;
            public Tensor<float> Slopes;
        }

        [Attention(HeadDim = 64, DType = DType.BFloat16, MaskMod = nameof(CausalMod))]
        public static partial AttentionKernel Causal64();
        [Attention(HeadDim = 128, DType = DType.BFloat16, MaskMod = nameof(CausalMod))]
        public static partial AttentionKernel Causal128();
        static bool CausalMod(int batch, int head, int q, int kv) => q >= kv;

        [Attention(HeadDim = 64, DType = DType.BFloat16, Mask = MaskKind.Causal, ScoreMod = nameof(Softcap))]
        public static partial AttentionKernel Softcap64();
        [Attention(HeadDim = 128, DType = DType.BFloat16, Mask = MaskKind.Causal, ScoreMod = nameof(Softcap))]
        public static partial AttentionKernel Softcap128();
        static float Softcap(float score, int batch, int head, int q, int kv) => 30f * MathF.Tanh(score / 30f);

        [Attention(HeadDim = 64, DType = DType.BFloat16, Mask = MaskKind.Causal, ScoreMod = nameof(Alibi))]
        public static partial AttentionKernel Alibi64();
        [Attention(HeadDim = 128, DType = DType.BFloat16, Mask = MaskKind.Causal, ScoreMod = nameof(Alibi))]
        public static partial AttentionKernel Alibi128();
        static float Alibi(float score, int batch, int head, int q, int kv, in Args args) => score + args.Slopes[head] * (kv - q);

        [Attention(HeadDim = 64, DType = DType.BFloat16, MaskMod = nameof(Window))]
        public static partial AttentionKernel Window64();
        [Attention(HeadDim = 128, DType = DType.BFloat16, MaskMod = nameof(Window))]
        public static partial AttentionKernel Window128();
        static bool Window(int batch, int head, int q, int kv, in Args args) => q >= kv && q - kv < args.Window;

        [Attention(HeadDim = 64, DType = DType.BFloat16, MaskMod = nameof(PrefixLm))]
        public static partial AttentionKernel PrefixLm64();
        [Attention(HeadDim = 128, DType = DType.BFloat16, MaskMod = nameof(PrefixLm))]
        public static partial AttentionKernel PrefixLm128();
        static bool PrefixLm(int batch, int head, int q, int kv, in Args args) => kv < args.Prefix || q >= kv;

        [Attention(HeadDim = 64, DType = DType.BFloat16, MaskMod = nameof(Document))]
        public static partial AttentionKernel Document64();
        static bool Document(int batch, int head, int q, int kv, in Args args) => args.DocId[q] == args.DocId[kv] && q >= kv;

        private sealed record Case(
            string Name, AttentionKernel Kernel, int Batch, int Tokens, AttentionBias? Bias,
            ReferenceAttention.ScoreModFunction? Score, Func<int, ReferenceAttention.MaskModFunction>? Mask);

        public static int Run(XFormersContext context, string outDir)
        {
            Directory.CreateDirectory(outDir);
            int failures = 0;
            using var csv = new StreamWriter(Path.Combine(outDir, "mods.csv"));
            csv.WriteLine("name,k,batch,heads,tokens,backend,fwd_ms,fwdbwd_ms");
            const int heads = 16;
            var slopes = AlibiBias.DefaultSlopes(heads);
            using var slopeTable = Tensor<float>.FromArray(context, slopes, heads);
            foreach (int k in new[] { 64, 128 })
            {
                var cases = new[]
                {
                    new Case("causal", k == 64 ? Causal64() : Causal128(), 4, 4096, null, null, _ => (b, h, q, kv) => q >= kv),
                    new Case("softcap", k == 64 ? Softcap64() : Softcap128(), 4, 4096, new LowerTriangularMask(), (s, b, h, q, kv) => 30 * Math.Tanh(s / 30), null),
                    new Case("alibi", k == 64 ? Alibi64() : Alibi128(), 4, 4096, new LowerTriangularMask(), (s, b, h, q, kv) => s + slopes[h] * (kv - q), null),
                    new Case("window", k == 64 ? Window64() : Window128(), 4, 4096, null, null, w => (b, h, q, kv) => q >= kv && q - kv < w),
                    new Case("prefix", k == 64 ? PrefixLm64() : PrefixLm128(), 4, 4096, null, null, p => (b, h, q, kv) => kv < p || q >= kv),
                };
                if (k == 64)
                    cases = cases.Append(new Case("document", Document64(), 1, 16384, null, null, null)).ToArray();
                foreach (var c in cases)
                {
                    // One sequence of 16 heads, then two of 8 query heads over 2 key/value heads (GQA: the dK/dV pass walks
                    // the group's query heads from its block list).
                    failures += Check(context, c, k, slopeTable, batch: 1, tokens: 300, heads: 16, kvHeads: 16);
                    failures += Check(context, c, k, slopeTable, batch: 2, tokens: 200, heads: 8, kvHeads: 2);
                    Time(context, csv, c, k, heads, slopeTable);
                    if ((c.Kernel as AttentionKernel<BFloat16>)?.HopperForward?.SmallGrid is not null)
                    {
                        // The second grid's module (128-row CTAs), which the launcher picks for grids the first fills badly:
                        // checked with its own block list, and timed beside the first at the same shape.
                        Hopper.HopperLauncher.ForceSmallGrid = true;
                        try
                        {
                            failures += Check(context, c with { Name = c.Name + " (128-row CTAs)" }, k, slopeTable, batch: 2, tokens: 200, heads: 8, kvHeads: 2);
                            Time(context, csv, c with { Name = c.Name + "-128rows" }, k, heads, slopeTable);
                        }
                        finally
                        {
                            Hopper.HopperLauncher.ForceSmallGrid = false;
                        }
                    }
                }
            }
            Console.WriteLine(failures == 0 ? "mods conformance: all PASS" : $"mods conformance: {failures} FAIL");
            return failures;
        }

        /// <summary>The run-time arguments at a shape: a window of 1024 (tokens / 4 when checking), a prefix of 1024, 8 documents.</summary>
        private static AttentionKernel Bind(AttentionKernel kernel, XFormersContext context, int tokens, bool check, Tensor<float> slopes, out Tensor<int> docIds, out int[] ids)
        {
            int span = check ? tokens / 4 : 1024;
            ids = Enumerable.Range(0, tokens).Select(t => t * 8 / tokens).ToArray();
            docIds = Tensor<int>.FromArray(context, ids, tokens);
            return kernel.Variant.ModArgsType is null ? kernel : kernel.WithArguments(new Args { Window = span, Prefix = span, DocId = docIds, Slopes = slopes });
        }

        private static int Check(XFormersContext context, Case c, int k, Tensor<float> slopes, int batch, int tokens, int heads, int kvHeads)
        {
            var kernel = Bind(c.Kernel, context, tokens, check: true, slopes, out var docIds, out var ids);
            using var docIdsScope = docIds;
            using var q = Tensor<BFloat16>.RandomNormal(context, 1, 1f, batch, tokens, heads, k);
            using var key = Tensor<BFloat16>.RandomNormal(context, 2, 1f, batch, tokens, kvHeads, k);
            using var v = Tensor<BFloat16>.RandomNormal(context, 3, 1f, batch, tokens, kvHeads, k);
            using var dO = Tensor<BFloat16>.RandomNormal(context, 4, 1f, batch, tokens, heads, k);
            ReferenceAttention.MaskModFunction? mask = c.Name.StartsWith("document", StringComparison.Ordinal) ? (b, h, i, j) => ids[i] == ids[j] && i >= j : c.Mask?.Invoke(tokens / 4);
            var problem = ReferenceAttention.ProblemFor(q, key, c.Bias) with { ScoreMod = c.Score, MaskMod = mask };
            double[] qd = q.ToDoubleArray(), kd = key.ToDoubleArray(), vd = v.ToDoubleArray();
            var expected = ReferenceAttention.Forward(problem, qd, kd, vd);
            var grads = ReferenceAttention.Backward(problem, qd, kd, vd, dO.ToDoubleArray());
            using var forward = kernel.Forward(q, key, v, c.Bias);
            using var actual = kernel.Backward(dO, forward, q, key, v, c.Bias);
            double[] errors =
            {
                ReferenceAttention.ScaledError(forward.Output.ToDoubleArray(), expected.Output),
                ReferenceAttention.ScaledError(forward.Lse.ToDoubleArray(), expected.Lse),
                ReferenceAttention.ScaledError(actual.Query.ToDoubleArray(), grads.Query),
                ReferenceAttention.ScaledError(actual.Key.ToDoubleArray(), grads.Key),
                ReferenceAttention.ScaledError(actual.Value.ToDoubleArray(), grads.Value),
            };
            double worst = errors.Max();
            double tolerance = ReferenceAttention.Tolerance(DType.BFloat16, k);
            bool pass = worst <= tolerance;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{(pass ? "PASS" : "FAIL")} mods {c.Name} K{k} B{batch} Hq{heads} Hkv{kvHeads} M{tokens}: worst scaled error {worst:E2} (tolerance {tolerance:E2}); {kernel.BackendOn(context.Accelerator)}"));
            if (!pass)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  O {errors[0]:E1}, Lse {errors[1]:E1}, dQ {errors[2]:E1}, dK {errors[3]:E1}, dV {errors[4]:E1}"));
                // Where the output misses: the worst error of each 64-row band of query rows (head 0), and of the LSE.
                var o = forward.Output.ToDoubleArray();
                var lse = forward.Lse.ToDoubleArray();
                var bands = Enumerable.Range(0, (tokens + 63) / 64).Select(band =>
                {
                    double e = 0, l = 0;
                    for (int i = band * 64; i < Math.Min(tokens, band * 64 + 64); i++)
                    {
                        for (int d = 0; d < k; d++)
                            e = Math.Max(e, Math.Abs(o[(long)i * heads * k + d] - expected.Output[(long)i * heads * k + d]));
                        l = Math.Max(l, Math.Abs(lse[i] - expected.Lse[i]));
                    }
                    return string.Create(CultureInfo.InvariantCulture, $"rows {band * 64}+: O {e:E1} Lse {l:E1}");
                });
                Console.WriteLine("  " + string.Join("; ", bands));
            }
            return pass ? 0 : 1;
        }

        private static void Time(XFormersContext context, StreamWriter csv, Case c, int k, int heads, Tensor<float> slopes)
        {
            var kernel = Bind(c.Kernel, context, c.Tokens, check: false, slopes, out var docIds, out var unusedIds);
            using var docIdsScope = docIds;
            using var q = Tensor<BFloat16>.RandomNormal(context, 1, 1f, c.Batch, c.Tokens, heads, k);
            using var key = Tensor<BFloat16>.RandomNormal(context, 2, 1f, c.Batch, c.Tokens, heads, k);
            using var v = Tensor<BFloat16>.RandomNormal(context, 3, 1f, c.Batch, c.Tokens, heads, k);
            using var dO = Tensor<BFloat16>.RandomNormal(context, 4, 1f, c.Batch, c.Tokens, heads, k);
            // Outputs allocated once, as the main benchmark does: a timed allocation and free would dominate a 0.2 ms call.
            using var o = Tensor<BFloat16>.Empty(context, q.Shape.ToArray());
            using var lse = Tensor<float>.Empty(context, c.Batch, heads, c.Tokens);
            using var dq = Tensor<BFloat16>.Empty(context, q.Shape.ToArray());
            using var dk = Tensor<BFloat16>.Empty(context, key.Shape.ToArray());
            using var dv = Tensor<BFloat16>.Empty(context, v.Shape.ToArray());
            double fwd = Benchmarks.Median(context, () => Fmha.MemoryEfficientAttentionForward(q, key, v, o, lse, c.Bias, kernel: kernel));
            double both = Benchmarks.Median(context, () =>
            {
                Fmha.MemoryEfficientAttentionForward(q, key, v, o, lse, c.Bias, kernel: kernel);
                Fmha.MemoryEfficientAttentionBackward(dO, o, lse, q, key, v, dq, dk, dv, null, c.Bias, kernel: kernel);
            });
            string line = string.Create(CultureInfo.InvariantCulture,
                $"{c.Name},{k},{c.Batch},{heads},{c.Tokens},{kernel.BackendOn(context.Accelerator).Replace(',', ';')},{fwd:F3},{both:F3}");
            csv.WriteLine(line);
            csv.Flush();
            Console.WriteLine("mods " + line);
        }
    }
}
