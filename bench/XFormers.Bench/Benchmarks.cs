using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.NoEmit;
using XFormers.Dsl;
using XFormers.Reference;

namespace XFormers.Bench
{
    /// <summary>
    /// The plain table mode: each measurement synchronizes, times one call with a host clock, and reports the
    /// median of repeats after a warm-up (module load and compilation stay out). Rows go to stdout and a CSV that
    /// scripts/attention_torch.py merges with PyTorch's numbers.
    /// </summary>
    internal static class Benchmarks
    {
        private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

        /// <summary>One timed row: what ran, its median time and rate.</summary>
        public sealed record Row(string Name, string DType, int HeadDim, bool Causal, string Mode, double Ms, double Tflops, string Note = "");

        public static void RunTable(XFormersContext context, string outDir, bool seedTable, bool throughput, string? only = null)
        {
            Directory.CreateDirectory(outDir);
            var rows = new List<Row>();
            // ours.csv is rewritten after every row, so a run cut short by its time limit still leaves what it measured.
            void Add(Row row)
            {
                rows.Add(row);
                using var csv = new StreamWriter(Path.Combine(outDir, "ours.csv"));
                csv.WriteLine("name,dtype,k,causal,mode,ms,tflops,note");
                foreach (var r in rows)
                    csv.WriteLine(string.Join(",", r.Name, r.DType, r.HeadDim, r.Causal ? 1 : 0, r.Mode, r.Ms.ToString("0.000", Invariant), r.Tflops.ToString("0.0", Invariant), r.Note));
            }
            if (seedTable)
                SeedTable(context, Add);
            if (throughput)
            {
                Throughput(context, Add, only);
                Breakdown(context, only);
            }
        }

        /// <summary>The seed's table: naive vs generated attention, forward + backward, B=2 H=8 K=64 fp16, growing M.</summary>
        private static void SeedTable(XFormersContext context, Action<Row> add)
        {
            Console.WriteLine("seed table: fwd+bwd, B=2 H=8 K=64 fp16, no mask; MB = bytes the call's tensors hold (inputs, outputs, workspace)");
            Console.WriteLine($"{"M",6} {"ours ms",9} {"ours MB",9} {"naive ms",9} {"naive MB",9}");
            double naiveMs = 0, oursMs = 0;
            foreach (int m in new[] { 512, 1024, 2048, 4096, 8192, 16384 })
            {
                if (oursMs > 3_000)
                {
                    Console.WriteLine($"{m,6} skipped: the previous size took {oursMs / 1000:0} s");
                    continue;
                }
                var c = new Case(2, m, m, 8, 8, 64, MaskKind.None, BiasKind.None);
                using var x = c.Create<ILGPU.Half>(context);
                double ours = oursMs = TimeForwardBackward(context, c, x);
                long io = 2L * (4 * x.Q.Length + 4 * x.K.Length) + 2 * 4L * c.Batch * c.Hq * c.Mq; // q k v o dO dq dk dv + lse, delta
                long naiveBytes = io + NaiveAttention.WorkspaceBytes(c.Batch, c.Hq, m, m, DType.Float16) + 2L * c.Batch * c.Hq * m * m;
                string naive;
                if (naiveMs > 20_000)
                {
                    naive = "skipped (previous size took > 20 s)";
                    naiveMs = double.PositiveInfinity;
                }
                else if (naiveBytes > context.Accelerator.MemorySize * 0.9)
                {
                    naive = $"out of memory (needs {naiveBytes / 1e6:0} MB)";
                }
                else
                {
                    try
                    {
                        naiveMs = Median(context, () =>
                        {
                            using var f = NaiveAttention.Forward(x.Q, x.K, x.V);
                            using var g = NaiveAttention.Backward(x.dO, x.Q, x.K, x.V);
                        }, maxReps: 5, budgetMs: 10_000);
                        naive = $"{naiveMs,9:0.00} {naiveBytes / 1e6,9:0}";
                        add(new Row($"seed-naive-M{m}", "fp16", 64, false, "fwd+bwd", naiveMs, 3.5 * c.ForwardFlops() / naiveMs / 1e9, $"{naiveBytes / 1e6:0}MB"));
                    }
                    catch (Exception ex) when (ex is ILGPU.Runtime.AcceleratorException or OutOfMemoryException)
                    {
                        naive = $"out of memory ({ex.GetType().Name})";
                    }
                }
                add(new Row($"seed-ours-M{m}", "fp16", 64, false, "fwd+bwd", ours, 3.5 * c.ForwardFlops() / ours / 1e9, $"{io / 1e6:0}MB"));
                Console.WriteLine($"{m,6} {ours,9:0.00} {io / 1e6,9:0} {naive}");
            }
        }

        /// <summary>
        /// The forward gate's cases (fp16): B4 H16 M4096 at K64 and K128 (and K256, reported beside), causal and not; the seed's shapes (B2 H8 K64, M 512
        /// to 16384); one long context, B1 H16 M16384 causal. scripts/attention_torch.py's <c>gate</c> times PyTorch's backends on the same.
        /// </summary>
        public static IEnumerable<(string Name, Case Case)> GateCases()
        {
            foreach (int k in new[] { 64, 128, 256 })
                foreach (bool causal in new[] { false, true })
                    yield return ($"B4-H16-M4096{(causal ? "-causal" : "")}", new Case(4, 4096, 4096, 16, 16, k, causal ? MaskKind.Causal : MaskKind.None, BiasKind.None));
            foreach (int m in new[] { 512, 1024, 2048, 4096, 8192, 16384 })
                yield return ($"B2-H8-M{m}", new Case(2, m, m, 8, 8, 64, MaskKind.None, BiasKind.None));
            yield return ("B1-H16-M16384-causal", new Case(1, 16384, 16384, 16, 16, 128, MaskKind.Causal, BiasKind.None));
            yield return ("B1-H16-M16384-causal", new Case(1, 16384, 16384, 16, 16, 64, MaskKind.Causal, BiasKind.None));
        }

        /// <summary>Forward only, fp16 and bf16, the gate's cases; rows go to ours.csv as mode "fwd".</summary>
        public static void RunGate(XFormersContext context, string outDir, string? only)
        {
            Directory.CreateDirectory(outDir);
            using var csv = new StreamWriter(Path.Combine(outDir, "ours-gate.csv"));
            csv.WriteLine("name,dtype,k,causal,mode,ms,tflops,note");
            Console.WriteLine("forward gate: TFLOP/s = 4·B·H·M²·K (×½ causal); median of repeats");
            foreach (var dtype in new[] { "fp16", "bf16" })
            {
                foreach (var (name, c) in GateCases())
                {
                    if (!Selected(only, name, dtype, c.HeadDim))
                        continue;
                    double fwd = dtype == "fp16" ? TimeCase<ILGPU.Half>(context, c, backward: false).Forward : TimeCase<BFloat16>(context, c, backward: false).Forward;
                    double flops = c.ForwardFlops();
                    csv.WriteLine(string.Join(",", name, dtype, c.HeadDim, c.Mask != MaskKind.None ? 1 : 0, "fwd", fwd.ToString("0.0000", Invariant), (flops / fwd / 1e9).ToString("0.0", Invariant), ""));
                    csv.Flush();
                    Console.WriteLine($"{name,-22} {dtype} K{c.HeadDim,-3} fwd {fwd,8:0.000} ms {flops / fwd / 1e9,6:0.0} TFLOP/s");
                }
            }
        }

        /// <summary>The throughput cases at B=4 H=16 M=4096 (and the same token count packed, with GQA, with ALiBi), HeadDim 64, 128 and 256.</summary>
        public static IEnumerable<(string Name, Case Case)> ThroughputCases()
        {
            foreach (int k in new[] { 64, 128 })
            {
                foreach (bool causal in new[] { false, true })
                    yield return ($"B4-H16-M4096{(causal ? "-causal" : "")}", new Case(4, 4096, 4096, 16, 16, k, causal ? MaskKind.Causal : MaskKind.None, BiasKind.None));
                yield return ("varlen-causal", new Case(1, 16384, 16384, 16, 16, k, MaskKind.BlockDiagonalCausal, BiasKind.None,
                    new[] { 1000, 3000, 5000, 7384 }, new[] { 1000, 3000, 5000, 7384 }));
                yield return ("gqa-16/4-causal", new Case(4, 4096, 4096, 16, 4, k, MaskKind.Causal, BiasKind.None));
                yield return ("alibi-causal", new Case(4, 4096, 4096, 16, 16, k, MaskKind.Causal, BiasKind.Alibi));
            }
            // HeadDim 256: the stock variants have no mask or a causal one.
            foreach (bool causal in new[] { false, true })
                yield return ($"B4-H16-M4096{(causal ? "-causal" : "")}", new Case(4, 4096, 4096, 16, 16, 256, causal ? MaskKind.Causal : MaskKind.None, BiasKind.None));
        }

        /// <summary>Whether a case is selected by --only (a comma-separated list of substrings of "name/dtype/Kk"; null: all).</summary>
        private static bool Selected(string? only, string name, string dtype, int headDim) =>
            only is null || only.Split(',').Any(part => $"{name}/{dtype}/K{headDim}".Contains(part, StringComparison.Ordinal));

        private static void Throughput(XFormersContext context, Action<Row> add, string? only)
        {
            Console.WriteLine("throughput: TFLOP/s = 4·B·H·M²·K (×½ causal) per forward, ×3.5 for forward+backward; median of repeats");
            foreach (var dtype in new[] { "fp16", "bf16" })
            {
                foreach (var (name, c) in ThroughputCases())
                {
                    if (dtype == "bf16" && name is not ("B4-H16-M4096" or "B4-H16-M4096-causal") || !Selected(only, name, dtype, c.HeadDim))
                        continue;
                    bool causal = c.Mask != MaskKind.None;
                    bool backward = true;
                    double fwd, both;
                    if (dtype == "fp16")
                        (fwd, both) = TimeCase<ILGPU.Half>(context, c, backward);
                    else
                        (fwd, both) = TimeCase<BFloat16>(context, c, backward);
                    double flops = c.ForwardFlops();
                    add(new Row(name, dtype, c.HeadDim, causal, "fwd", fwd, flops / fwd / 1e9));
                    if (backward)
                        add(new Row(name, dtype, c.HeadDim, causal, "fwd+bwd", both, 3.5 * flops / both / 1e9));
                    Console.WriteLine($"{name,-22} {dtype} K{c.HeadDim,-3} fwd {fwd,8:0.000} ms {flops / fwd / 1e9,6:0.0} TFLOP/s   fwd+bwd {both,8:0.000} ms {3.5 * flops / both / 1e9,6:0.0} TFLOP/s");
                }
            }
        }

        /// <summary>
        /// Where fwd+bwd spends its time, kernel by kernel, for the headline fp16 cases: the launch observer synchronizes
        /// after each launch and reads the clock (median of 5 calls after a warm-up; the launch gaps it adds are microseconds).
        /// </summary>
        private static void Breakdown(XFormersContext context, string? only)
        {
            Console.WriteLine("breakdown: fp16 fwd+bwd, ms per kernel (median of 5, synchronized after each launch)");
            foreach (var (name, c) in ThroughputCases().Where(x => x.Name.StartsWith("B4-H16-M4096", StringComparison.Ordinal) && Selected(only, x.Name, "fp16", x.Case.HeadDim)))
            {
                using var x = c.Create<ILGPU.Half>(context);
                using var o = Tensor<ILGPU.Half>.Empty(context, x.Q.Shape.ToArray());
                using var lse = Tensor<float>.Empty(context, c.Batch, c.Hq, c.Mq);
                using var dq = Tensor<ILGPU.Half>.Empty(context, x.Q.Shape.ToArray());
                using var dk = Tensor<ILGPU.Half>.Empty(context, x.K.Shape.ToArray());
                using var dv = Tensor<ILGPU.Half>.Empty(context, x.K.Shape.ToArray());
                var times = new Dictionary<string, List<double>>();
                var watch = new Stopwatch();
                void Call()
                {
                    Fmha.MemoryEfficientAttentionForward(x.Q, x.K, x.V, o, lse, x.AttnBias);
                    Fmha.MemoryEfficientAttentionBackward(x.dO, o, lse, x.Q, x.K, x.V, dq, dk, dv, null, x.AttnBias);
                }
                Call();
                context.Synchronize();
                AttentionKernel.LaunchObserver = step =>
                {
                    context.Synchronize();
                    (times.TryGetValue(step, out var list) ? list : times[step] = new List<double>()).Add(watch.Elapsed.TotalMilliseconds);
                    watch.Restart();
                };
                try
                {
                    for (int rep = 0; rep < 5; rep++)
                    {
                        context.Synchronize();
                        watch.Restart();
                        Call();
                    }
                }
                finally
                {
                    AttentionKernel.LaunchObserver = null;
                }
                string Median(List<double> t) => t.OrderBy(v => v).ElementAt(t.Count / 2).ToString("0.000", Invariant);
                Console.WriteLine($"{name,-22} K{c.HeadDim,-3} " + string.Join("  ", times.Select(kv => $"{kv.Key} {Median(kv.Value)}")));
            }
        }

        private static (double Forward, double Both) TimeCase<T>(XFormersContext context, Case c, bool backward)
            where T : unmanaged
        {
            using var x = c.Create<T>(context);
            using var o = Tensor<T>.Empty(context, x.Q.Shape.ToArray());
            using var lse = Tensor<float>.Empty(context, c.Batch, c.Hq, c.Mq);
            double fwd = Median(context, () => Fmha.MemoryEfficientAttentionForward(x.Q, x.K, x.V, o, lse, x.AttnBias));
            return (fwd, backward ? TimeForwardBackward(context, c, x) : double.NaN);
        }

        private static double TimeForwardBackward<T>(XFormersContext context, Case c, Inputs<T> x)
            where T : unmanaged
        {
            using var o = Tensor<T>.Empty(context, x.Q.Shape.ToArray());
            using var lse = Tensor<float>.Empty(context, c.Batch, c.Hq, c.Mq);
            using var dq = Tensor<T>.Empty(context, x.Q.Shape.ToArray());
            using var dk = Tensor<T>.Empty(context, x.K.Shape.ToArray());
            using var dv = Tensor<T>.Empty(context, x.K.Shape.ToArray());
            return Median(context, () =>
            {
                Fmha.MemoryEfficientAttentionForward(x.Q, x.K, x.V, o, lse, x.AttnBias);
                Fmha.MemoryEfficientAttentionBackward(x.dO, o, lse, x.Q, x.K, x.V, dq, dk, dv, null, x.AttnBias);
            });
        }

        /// <summary>Median milliseconds of synchronized runs after two warm-up calls, repeating up to maxReps within budgetMs.</summary>
        public static double Median(XFormersContext context, Action run, int maxReps = 15, double budgetMs = 1500)
        {
            // The first call may load a module or plan a mask; the second one's time sizes the batches below (sized by the
            // first, a local-attention forward was timed one call a sample, host round trip included: 0.260 against 0.228 ms).
            run();
            context.Synchronize();
            var warmup = Stopwatch.StartNew();
            run();
            context.Synchronize();
            double warmupMs = warmup.Elapsed.TotalMilliseconds;
            // A run longer than a second is timed once more only (the slow SIMT backward at large M).
            int minReps = warmupMs > 1000 ? 1 : 3;
            // Calls shorter than a millisecond are timed back to back, as CUDA events around a stream of launches time them
            // (triton's do_bench on the PyTorch side): one sample is the mean over a batch of about 2 ms, so the host's
            // synchronization round trip is not counted in every call.
            int batch = warmupMs >= 1 ? 1 : (int)Math.Min(200, Math.Ceiling(2.0 / Math.Max(warmupMs, 0.01)));
            var times = new List<double>();
            var total = Stopwatch.StartNew();
            while (times.Count < minReps || (times.Count < maxReps && total.Elapsed.TotalMilliseconds < budgetMs))
            {
                context.Synchronize();
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < batch; i++)
                    run();
                context.Synchronize();
                times.Add(watch.Elapsed.TotalMilliseconds / batch);
            }
            times.Sort();
            return times[times.Count / 2];
        }

        /// <summary>BenchmarkDotNet, in-process (the device has no SDK to build child projects).</summary>
        public static void RunBenchmarkDotNet(string outDir)
        {
            var job = Job.Default
                .WithToolchain(InProcessNoEmitToolchain.Instance)
                .WithLaunchCount(1)
                .WithWarmupCount(2)
                .WithIterationCount(5)
                .WithInvocationCount(1)
                .WithUnrollFactor(1);
            var config = ManualConfig.CreateMinimumViable()
                .AddJob(job)
                .WithArtifactsPath(Path.Combine(outDir, "bdn"))
                .WithOptions(ConfigOptions.DisableLogFile);
            BenchmarkRunner.Run<FmhaBenchmarks>(config);
        }
    }

    /// <summary>Forward and forward + backward at B=4 H=16 M=4096 fp16, the issue's headline shape.</summary>
    public class FmhaBenchmarks
    {
        private XFormersContext context = null!;
        private Inputs<ILGPU.Half> x = null!;
        private Tensor<ILGPU.Half> o = null!, dq = null!, dk = null!, dv = null!;
        private Tensor<float> lse = null!;

        [Params(64, 128)]
        public int HeadDim { get; set; }

        [Params(false, true)]
        public bool Causal { get; set; }

        [GlobalSetup]
        public void Setup()
        {
            context = XFormersContext.Shared;
            var c = new Case(4, 4096, 4096, 16, 16, HeadDim, Causal ? MaskKind.Causal : MaskKind.None, BiasKind.None);
            x = c.Create<ILGPU.Half>(context);
            o = Tensor<ILGPU.Half>.Empty(context, x.Q.Shape.ToArray());
            dq = Tensor<ILGPU.Half>.Empty(context, x.Q.Shape.ToArray());
            dk = Tensor<ILGPU.Half>.Empty(context, x.K.Shape.ToArray());
            dv = Tensor<ILGPU.Half>.Empty(context, x.K.Shape.ToArray());
            lse = Tensor<float>.Empty(context, 4, 16, 4096);
        }

        [Benchmark]
        public void Forward()
        {
            Fmha.MemoryEfficientAttentionForward(x.Q, x.K, x.V, o, lse, x.AttnBias);
            context.Synchronize();
        }

        [Benchmark]
        public void ForwardBackward()
        {
            Fmha.MemoryEfficientAttentionForward(x.Q, x.K, x.V, o, lse, x.AttnBias);
            Fmha.MemoryEfficientAttentionBackward(x.dO, o, lse, x.Q, x.K, x.V, dq, dk, dv, null, x.AttnBias);
            context.Synchronize();
        }

        [GlobalCleanup]
        public void Cleanup()
        {
            x.Dispose();
            o.Dispose();
            dq.Dispose();
            dk.Dispose();
            dv.Dispose();
            lse.Dispose();
        }
    }
}
