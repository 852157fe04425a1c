using System;
using System.Diagnostics;
using System.Linq;
using XFormers.Dsl;
using XFormers.Reference;

namespace XFormers.Bench
{
    /// <summary>
    /// Every stock variant, forward and gradients, against the fp64 host reference on a small case and against
    /// the accelerator's naive reference (fed the same inputs widened to float32) on a larger one. Outputs are poisoned with NaN before each run, so an
    /// element a kernel never writes fails. A dropout variant is checked with p = 0 as above, and with p = <see cref="DropoutP"/>
    /// against <see cref="DropoutReference"/> (the same mask in fp64) on the small and ragged cases, its backward twice for the
    /// same bits. One summary line per variant; the exit code counts the misses.
    /// </summary>
    internal static class Conformance
    {
        /// <summary>Max errors of one comparison, each max |a − e| / max(1, ‖e‖∞); NaN or a mismatched infinity is ∞.</summary>
        private sealed record Errors(double O, double Lse, double dQ, double dK, double dV, double dBias)
        {
            public double Max => new[] { O, Lse, dQ, dK, dV, dBias }.Max();

            public override string ToString() =>
                $"O {O:0.0e+0} Lse {Lse:0.0e+0} dQ {dQ:0.0e+0} dK {dK:0.0e+0} dV {dV:0.0e+0}" + (dBias > 0 ? $" dB {dBias:0.0e+0}" : "");
        }

        /// <summary>The dropout probability and seed a dropout variant's conformance runs with (besides p = 0).</summary>
        private const double DropoutP = 0.2;
        private const ulong DropoutSeed = 20261201;

        public static int Run(XFormersContext context, string? filter, string? shard = null)
        {
            var parts = (shard ?? "0/1").Split('/');
            int index = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
            int count = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
            var variants = AttentionRegistry.Variants
                .Where(k => ShortName(k.Variant.Name) is not null)
                .Where(k => Program.Matches(k.Variant.Name, filter))
                .Where((_, i) => i % count == index)
                .ToArray();
            Console.WriteLine($"conformance: {variants.Length} stock and head-dim variants on {context.Description}");
            int failures = 0;
            double worstSmall = 0, worstLarge = 0;
            var total = Stopwatch.StartNew();
            foreach (var kernel in variants)
            {
                var watch = Stopwatch.StartNew();
                string line;
                bool ok;
                try
                {
                    (ok, line, double small, double large) = kernel.ElementType == typeof(float) ? Check<float>(context, kernel)
                        : kernel.ElementType == typeof(ILGPU.Half) ? Check<ILGPU.Half>(context, kernel)
                        : Check<BFloat16>(context, kernel);
                    worstSmall = Math.Max(worstSmall, small);
                    worstLarge = Math.Max(worstLarge, large);
                }
                catch (Exception ex)
                {
                    ok = false;
                    line = $"{ex.GetType().Name}: {ex.Message.Split('\n')[0]}";
                }
                if (!ok)
                    failures++;
                Console.WriteLine($"{(ok ? "PASS" : "FAIL")} {ShortName(kernel.Variant.Name),-34} {line} ({watch.ElapsedMilliseconds} ms)");
            }
            Console.WriteLine($"conformance: {variants.Length - failures} passed, {failures} failed; worst scaled error {worstSmall:0.0e+0} vs fp64, {worstLarge:0.0e+0} vs naive ({total.Elapsed.TotalSeconds:0} s)");
            return failures;
        }

        /// <summary>
        /// The stock variants and the harness's own (<see cref="HeadDimVariants"/>, <see cref="LocalVariants"/>), by their method
        /// names; null for others.
        /// </summary>
        private static string? ShortName(string name) =>
            name.StartsWith("XFormers.StockVariants.", StringComparison.Ordinal) ? name["XFormers.StockVariants.".Length..]
            : name.StartsWith("XFormers.Bench.HeadDimVariants.", StringComparison.Ordinal) ? name["XFormers.Bench.".Length..]
            : name.StartsWith("XFormers.Bench.LocalVariants.", StringComparison.Ordinal) ? name["XFormers.Bench.".Length..]
            : null;

        /// <summary>Tolerances on scaled errors: float32 1e-4; 8 unit roundoffs for 16-bit types (vs fp64, and vs the naive reference run in float32).</summary>
        private static double Tolerance(DType dtype) =>
            dtype == DType.Float32 ? 1e-4 : 8 * ElementType.UnitRoundoff(dtype);

        private static (bool Ok, string Line, double Small, double Large) Check<T>(XFormersContext context, AttentionKernel kernel)
            where T : unmanaged
        {
            var v = kernel.Variant;
            var small = Case.For(v, batch: 2, mq: 67, mkv: 75, hq: 4, hkv: 2);
            var large = Case.For(v, batch: 1, mq: 520, mkv: 520, hq: 4, hkv: 1, seed: 11);
            var smallErrors = Compare<T>(context, kernel, small, naive: false);
            var largeErrors = Compare<T>(context, kernel, large, naive: true);
            // Ragged shapes for the 16-bit variants (the sm_90a forward's cases): Mq > Mkv, so bottom-right causal rows see
            // no key; packed segments of length 1 and 0 on either side, one with queries and no keys.
            var ragged = Ragged(v);
            // The ragged case runs the variant's first sm_90a module even where the grid would pick the small-grid one
            // (the other two cases are small enough to pick it), so both modules of a HeadDim-64 variant are checked.
            Errors? raggedErrors = null;
            if (ragged is not null)
            {
                Hopper.HopperLauncher.ForceFirstModule = true;
                try { raggedErrors = Compare<T>(context, kernel, ragged, naive: false); }
                finally { Hopper.HopperLauncher.ForceFirstModule = false; }
            }
            double worst = Math.Max(smallErrors.Max, raggedErrors?.Max ?? 0);
            // The backward twice on the large case: the same bits both times (no atomics whose order varies).
            bool deterministic = !v.Backward || SameBits<T>(context, kernel, large);
            // Dropout: the small and ragged cases again with p > 0, against the fp64 oracle with the same mask; the same bits twice.
            string dropoutLine = "";
            if (v.Dropout)
            {
                var dropoutErrors = Compare<T>(context, kernel, small, naive: false, DropoutP, DropoutSeed);
                var raggedDropout = ragged is null ? null : Compare<T>(context, kernel, ragged, naive: false, DropoutP, DropoutSeed);
                worst = Math.Max(worst, Math.Max(dropoutErrors.Max, raggedDropout?.Max ?? 0));
                deterministic &= !v.Backward || SameBits<T>(context, kernel, small, DropoutP, DropoutSeed);
                dropoutLine = $" dropout p={DropoutP} [{dropoutErrors}]" + (raggedDropout is null ? "" : $" ragged [{raggedDropout}]");
            }
            bool ok = worst <= Tolerance(v.DType) && largeErrors.Max <= Tolerance(v.DType) && deterministic;
            return (ok, $"fp64 [{smallErrors}] naive [{largeErrors}]" + (raggedErrors is null ? "" : $" ragged [{raggedErrors}]") + dropoutLine +
                        (deterministic ? "" : " NOT DETERMINISTIC") + $" {kernel.BackendOn(context.Accelerator)}", worst, largeErrors.Max);
        }

        private static Case? Ragged(AttentionVariant v)
        {
            if (v.DType == DType.Float32)
                return null;
            int window = v.Mask.IsLocal() ? 37 : 0;
            if (v.Mask.IsBlockDiagonal())
            {
                int[] q = { 1, 0, 77, 130, 3 }, kv = { 1, 9, 0, 64, 2 };
                return new Case(1, q.Sum(), kv.Sum(), 4, 1, v.HeadDim, v.Mask, v.Bias, q, kv, v.BiasGradient, Seed: 5, Window: window);
            }
            return new Case(2, 150, 70, 4, 1, v.HeadDim, v.Mask, v.Bias, BiasRequiresGrad: v.BiasGradient, Seed: 5, Window: window);
        }

        private static Errors Compare<T>(XFormersContext context, AttentionKernel kernel, Case c, bool naive, double p = 0, ulong seed = 0)
            where T : unmanaged
        {
            using var x = c.Create<T>(context);
            var (o, lse, dq, dk, dv, dbias) = RunPoisoned(context, kernel, c, x, p, seed);
            using (o) using (lse) using (dq) using (dk) using (dv) using (dbias)
            {
                double[] eO, eLse, eQ, eK, eV, eB;
                if (naive)
                {
                    // The naive reference runs on the inputs widened to float32: stored in a 16-bit dtype, its S loses
                    // ~1 unit of score where ALiBi makes |S| large (hundreds at M = 520), which no kernel should be held to.
                    using var w = c.Widen(context, x);
                    using var f = NaiveAttention.Forward(w.Q, w.K, w.V, w.AttnBias);
                    using var g = NaiveAttention.Backward(w.dO, w.Q, w.K, w.V, w.AttnBias);
                    (eO, eLse, eQ, eK, eV) = (f.Output.ToDoubleArray(), f.Lse.ToDoubleArray(), g.Query.ToDoubleArray(), g.Key.ToDoubleArray(), g.Value.ToDoubleArray());
                    eB = g.Bias?.ToDoubleArray() ?? Array.Empty<double>();
                }
                else
                {
                    var problem = ReferenceAttention.ProblemFor(x.Q, x.K, x.AttnBias);
                    var (qd, kd, vd) = (x.Q.ToDoubleArray(), x.K.ToDoubleArray(), x.V.ToDoubleArray());
                    var f = p > 0 ? DropoutReference.Forward(problem, qd, kd, vd, p, seed) : ReferenceAttention.Forward(problem, qd, kd, vd);
                    var g = p > 0
                        ? DropoutReference.Backward(problem, qd, kd, vd, x.dO.ToDoubleArray(), p, seed)
                        : ReferenceAttention.Backward(problem, qd, kd, vd, x.dO.ToDoubleArray());
                    (eO, eLse, eQ, eK, eV, eB) = (f.Output, f.Lse, g.Query, g.Key, g.Value, g.Bias);
                }
                return new Errors(
                    Error(o.ToDoubleArray(), eO), Error(lse.ToDoubleArray(), eLse),
                    Error(dq.ToDoubleArray(), eQ), Error(dk.ToDoubleArray(), eK), Error(dv.ToDoubleArray(), eV),
                    dbias is null ? 0 : Error(dbias.ToDoubleArray(), eB));
            }
        }

        /// <summary>Runs the variant's forward and backward (dropping scores with probability <paramref name="p"/>) into outputs first filled with NaN.</summary>
        private static (Tensor<T> O, Tensor<float> Lse, Tensor<T> dQ, Tensor<T> dK, Tensor<T> dV, Tensor<T>? dBias) RunPoisoned<T>(
            XFormersContext context, AttentionKernel kernel, Case c, Inputs<T> x, double p = 0, ulong seed = 0)
            where T : unmanaged
        {
            var o = Poisoned<T>(context, x.Q.Shape.ToArray());
            var lse = Poisoned<float>(context, c.Batch, c.Hq, c.Mq);
            var dq = Poisoned<T>(context, x.Q.Shape.ToArray());
            var dk = Poisoned<T>(context, x.K.Shape.ToArray());
            var dv = Poisoned<T>(context, x.K.Shape.ToArray());
            var dbias = c.BiasRequiresGrad ? Poisoned<T>(context, c.Batch, c.Hq, c.Mq, c.Mkv) : null;
            Fmha.MemoryEfficientAttentionForward(x.Q, x.K, x.V, o, lse, x.AttnBias, kernel: kernel, p: p, seed: seed);
            Fmha.MemoryEfficientAttentionBackward(x.dO, o, lse, x.Q, x.K, x.V, dq, dk, dv, dbias, x.AttnBias, kernel: kernel, p: p, seed: seed);
            context.Synchronize();
            return (o, lse, dq, dk, dv, dbias);
        }

        /// <summary>Runs forward and backward twice on the same inputs and compares every output bit for bit.</summary>
        private static bool SameBits<T>(XFormersContext context, AttentionKernel kernel, Case c, double p = 0, ulong seed = 0)
            where T : unmanaged
        {
            using var x = c.Create<T>(context);
            var first = RunPoisoned(context, kernel, c, x, p, seed);
            var second = RunPoisoned(context, kernel, c, x, p, seed);
            try
            {
                return Bits(first.O, second.O) && Bits(first.dQ, second.dQ) && Bits(first.dK, second.dK) && Bits(first.dV, second.dV) &&
                       (first.dBias is null || Bits(first.dBias, second.dBias!));
            }
            finally
            {
                foreach (var t in new IDisposable?[] { first.O, first.Lse, first.dQ, first.dK, first.dV, first.dBias, second.O, second.Lse, second.dQ, second.dK, second.dV, second.dBias })
                    t?.Dispose();
            }
        }

        private static bool Bits<T>(Tensor<T> a, Tensor<T> b)
            where T : unmanaged =>
            System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.ToArray().AsSpan()).SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(b.ToArray().AsSpan()));

                private static Tensor<T> Poisoned<T>(XFormersContext context, params int[] shape)
            where T : unmanaged
        {
            long n = shape.Aggregate(1L, (a, d) => a * d);
            return Tensor<T>.FromFloats(context, Enumerable.Repeat(float.NaN, (int)n).ToArray(), shape);
        }

        public static double Error(double[] actual, double[] expected) => ReferenceAttention.ScaledError(actual, expected);
    }
}
