using System;
using System.Globalization;
using System.IO;
using System.Linq;
using XFormers.Dsl;
using XFormers.Reference;

namespace XFormers.Bench
{
    /// <summary>
    /// Local (sliding-window) attention on the device: the stock local variant at FlexAttention's shape (B1 H16 M16384, window
    /// 1024, bf16), checked against fp64 on sampled rows, then timed beside causal attention over the same length
    /// (local.csv; scripts/attention_torch.py's <c>local</c> step times FlexAttention's sliding-window block mask).
    /// </summary>
    internal static class Local
    {
        private const int Heads = 16, Tokens = 16384, Window = 1024;

        public static int Run(XFormersContext context, string outDir)
        {
            Directory.CreateDirectory(outDir);
            using var csv = new StreamWriter(Path.Combine(outDir, "local.csv"));
            csv.WriteLine("name,k,batch,heads,tokens,window,backend,fwd_ms,fwdbwd_ms,fwd_tflops");
            bool pass = true;
            foreach (int k in new[] { 64, 128 })
            {
                using var q = Tensor<BFloat16>.RandomNormal(context, 1, 1f, 1, Tokens, Heads, k);
                using var key = Tensor<BFloat16>.RandomNormal(context, 2, 1f, 1, Tokens, Heads, k);
                using var v = Tensor<BFloat16>.RandomNormal(context, 3, 1f, 1, Tokens, Heads, k);
                using var dO = Tensor<BFloat16>.RandomNormal(context, 4, 1f, 1, Tokens, Heads, k);
                var local = new LowerTriangularFromBottomRightMask().MakeLocalAttention(Window);
                pass &= Check(context, q, key, v, local, k);
                Time(context, csv, "local", k, q, key, v, dO, local);
                Time(context, csv, "causal", k, q, key, v, dO, new LowerTriangularMask());
                if (k == 64)
                {
                    // HeadDim 64 has two forward modules: 192-row CTAs (three consumer warpgroups) and 128-row ones (two);
                    // a band of 1024 keys costs a CTA (1024 + rows) / 128 key tiles, so the smaller CTA wastes less.
                    foreach (bool small in new[] { false, true })
                    {
                        Hopper.HopperLauncher.ForceFirstModule = !small;
                        Hopper.HopperLauncher.ForceSmallGrid = small;
                        try
                        {
                            Time(context, csv, small ? "local-128-rows" : "local-192-rows", k, q, key, v, dO, local);
                        }
                        finally
                        {
                            Hopper.HopperLauncher.ForceFirstModule = Hopper.HopperLauncher.ForceSmallGrid = false;
                        }
                    }
                }
            }
            Console.WriteLine(pass ? "local check: PASS" : "local check: FAIL");
            return pass ? 0 : 1;
        }

        /// <summary>O and Lse of sampled rows (both band edges, the start, the end) of two heads against fp64.</summary>
        private static bool Check(XFormersContext context, Tensor<BFloat16> q, Tensor<BFloat16> key, Tensor<BFloat16> v, AttentionBias mask, int k)
        {
            using var result = Fmha.MemoryEfficientAttentionForward(q, key, v, mask);
            float[] o = result.Output.ToFloatArray(), lse = result.Lse.ToFloatArray();
            float[] qh = q.ToFloatArray(), kh = key.ToFloatArray(), vh = v.ToFloatArray();
            double scale = 1 / Math.Sqrt(k), worst = 0, worstLse = 0;
            foreach (int h in new[] { 0, Heads - 1 })
            {
                foreach (int i in new[] { 0, 1, Window - 1, Window, Window + 1, 5000, Tokens - 1 })
                {
                    int lo = Math.Max(0, i - Window + 1);
                    var scores = new double[i - lo + 1];
                    for (int j = lo; j <= i; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < k; d++)
                            dot += (double)qh[((long)i * Heads + h) * k + d] * kh[((long)j * Heads + h) * k + d];
                        scores[j - lo] = dot * scale;
                    }
                    double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                    worstLse = Math.Max(worstLse, Math.Abs(lse[(long)h * Tokens + i] - (max + Math.Log(sum))));
                    for (int d = 0; d < k; d++)
                    {
                        double expected = 0;
                        for (int j = lo; j <= i; j++)
                            expected += Math.Exp(scores[j - lo] - max) / sum * vh[((long)j * Heads + h) * k + d];
                        worst = Math.Max(worst, Math.Abs(o[((long)i * Heads + h) * k + d] - expected));
                    }
                }
            }
            double tolerance = ReferenceAttention.Tolerance(DType.BFloat16, k);
            bool ok = worst <= tolerance && worstLse <= tolerance;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"local K{k} window {Window}: O {worst:E2}, Lse {worstLse:E2} (tolerance {tolerance:E1}) {(ok ? "PASS" : "FAIL")}"));
            return ok;
        }

        private static void Time(
            XFormersContext context, StreamWriter csv, string name, int k,
            Tensor<BFloat16> q, Tensor<BFloat16> key, Tensor<BFloat16> v, Tensor<BFloat16> dO, AttentionBias mask)
        {
            var kernel = Fmha.SelectKernel(q, key, v, mask);
            // Outputs allocated once, as the main benchmark does: a timed allocation and free would dominate a 0.2 ms call.
            using var o = Tensor<BFloat16>.Empty(context, q.Shape.ToArray());
            using var lse = Tensor<float>.Empty(context, 1, Heads, Tokens);
            using var dq = Tensor<BFloat16>.Empty(context, q.Shape.ToArray());
            using var dk = Tensor<BFloat16>.Empty(context, key.Shape.ToArray());
            using var dv = Tensor<BFloat16>.Empty(context, v.Shape.ToArray());
            double fwd = Benchmarks.Median(context, () => Fmha.MemoryEfficientAttentionForward(q, key, v, o, lse, mask));
            double both = Benchmarks.Median(context, () =>
            {
                Fmha.MemoryEfficientAttentionForward(q, key, v, o, lse, mask);
                Fmha.MemoryEfficientAttentionBackward(dO, o, lse, q, key, v, dq, dk, dv, null, mask);
            });
            var c = new Case(1, Tokens, Tokens, Heads, Heads, k, mask.Mask, BiasKind.None, Window: mask.Window);
            double tflops = c.ForwardFlops() / (fwd * 1e-3) / 1e12;
            string line = string.Create(CultureInfo.InvariantCulture,
                $"{name},{k},1,{Heads},{Tokens},{(mask.Window > 0 ? mask.Window : Tokens)},{kernel.BackendOn(context.Accelerator).Replace(',', ';')},{fwd:F3},{both:F3},{tflops:F0}");
            csv.WriteLine(line);
            csv.Flush();
            Console.WriteLine("local " + line);
        }
    }
}
