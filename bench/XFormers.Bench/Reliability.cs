using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using ILGPU.Runtime.Cuda;
using XFormers.Dsl;
using XFormers.Reference;
using Half = ILGPU.Half;

namespace XFormers.Bench
{
    /// <summary>
    /// The device side of issue 13 (docs/RELIABILITY.md), one line per case: PASS or FAIL, each with its numbers.
    /// <c>large</c>: one attention call over more than 2^31 K/V elements against fp64; <c>nonfinite</c>: NaN and
    /// infinity in q, k, v, a tensor bias and dO reach exactly the outputs and gradients the fp64 reference makes
    /// non-finite, on each kernel family this process runs; <c>badinput</c>: bad arguments throw the documented exception
    /// before any launch, and the context still works after them; <c>leak</c>: create / run / dispose rounds keep process
    /// and device memory flat.
    /// </summary>
    internal static class Reliability
    {
        /// <summary>What <c>reliability</c> runs.</summary>
        public sealed record Options(bool Large, int LargeKeys, string? Cases, string? Families, int Rounds);

        private static int failures, passes;

        public static int Run(XFormersContext context, Options options)
        {
            bool Selected(string name) => options.Cases is null || options.Cases.Split(',').Contains(name, StringComparer.OrdinalIgnoreCase);
            var total = Stopwatch.StartNew();
            if (options.Large && Selected("large"))
                OverTwoToThe31(context, options.LargeKeys);
            if (Selected("nonfinite"))
                NonFiniteMatrix(context, options.Families);
            if (Selected("badinput"))
                BadInputs(context);
            if (Selected("leak"))
                Leak(context, options.Rounds);
            Console.WriteLine($"reliability: {passes} passed, {failures} failed ({total.Elapsed.TotalSeconds:0} s on {context.Description})");
            return failures;
        }

        private static void Report(string status, string line)
        {
            if (status == "PASS")
                passes++;
            else
                failures++;
            Console.WriteLine($"{status,-5} {line}");
        }

        /// <summary>
        /// max |actual − expected| / max(1, ‖expected‖∞) over the entries finite in both (the measure of
        /// <see cref="ReferenceAttention.ScaledError"/>; where an entry is non-finite is checked apart).
        /// </summary>
        private static double FiniteError(double[] actual, double[] expected)
        {
            double scale = 1, worst = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                if (double.IsFinite(expected[i]) && double.IsFinite(actual[i]))
                {
                    scale = Math.Max(scale, Math.Abs(expected[i]));
                    worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
                }
            }
            return worst / scale;
        }

        // ---------------------------------------------------------------------------------------------------------
        // 1. Over 2^31 K/V elements.

        /// <summary>
        /// One fp16 call, B1 Mq32 Hq = Hkv = 8, HeadDim 64, no mask, over <paramref name="mkv"/> keys (4,200,000: K and V hold
        /// 2,150,400,000 elements each, past 2^31). Each checked query row has one planted key (k = 2·q, so its weight is
        /// about half the row's), near the start, on either side of element 2^31, in the middle and last: a key read from
        /// the wrong place moves that row's O by about half a V row. Compared with fp64: O and LSE of every row; dQ of the
        /// planted rows and dK, dV of the planted keys (rows no query favours have gradients near 1/Mkv, too small to check).
        /// K and V are filled, and read back for the reference, in chunks of keys.
        /// </summary>
        private static void OverTwoToThe31(XFormersContext context, int mkv)
        {
            const int Mq = 32, H = LargeHeads, K = LargeHeadDim, Chunk = 1024;
            const double Alpha = 2;
            long elements = (long)mkv * H * K;
            // The first key whose elements start at or past 2^31 (on a small CPU run, a key three quarters along).
            int boundary = elements > (1L << 31) ? (int)((1L << 31) / (H * K)) : mkv * 3 / 4;
            int[] planted = { 1, boundary - 1, boundary, mkv / 2, mkv - 1 };
            int chunks = (mkv + Chunk - 1) / Chunk;
            var total = Stopwatch.StartNew();
            context.ResetPeakBytes();
            long freeBefore = FreeDeviceBytes(context);

            using var q = Tensor<Half>.FromFloats(context, HostRandom.Normal(101, Mq * H * K), 1, Mq, H, K);
            using var dO = Tensor<Half>.FromFloats(context, HostRandom.Normal(104, Mq * H * K), 1, Mq, H, K);
            using var key = Tensor<Half>.Empty(context, 1, mkv, H, K);
            using var value = Tensor<Half>.Empty(context, 1, mkv, H, K);
            var qd = q.ToDoubleArray();
            var dOd = dO.ToDoubleArray();
            var gate = new object();
            var watch = Stopwatch.StartNew();
            Parallel.For(0, chunks, c =>
            {
                int start = c * Chunk, n = Math.Min(Chunk, mkv - start);
                var k = HostRandom.Normal(unchecked(102 * 65537 + c), n * H * K);
                var v = HostRandom.Normal(unchecked(103 * 65537 + c), n * H * K);
                for (int p = 0; p < planted.Length; p++)
                {
                    if (planted[p] >= start && planted[p] < start + n)
                    {
                        for (int e = 0; e < H * K; e++)
                            k[(planted[p] - start) * H * K + e] = (float)(Alpha * qd[p * H * K + e]);
                    }
                }
                var kHalf = Array.ConvertAll(k, ElementType.FromFloat<Half>);
                var vHalf = Array.ConvertAll(v, ElementType.FromFloat<Half>);
                lock (gate)
                {
                    using var kRows = key.Narrow(1, start, n);
                    using var vRows = value.Narrow(1, start, n);
                    kRows.CopyFrom(kHalf);
                    vRows.CopyFrom(vHalf);
                }
            });
            double fillSeconds = watch.Elapsed.TotalSeconds;

            watch.Restart();
            using var forward = Fmha.MemoryEfficientAttentionForward(q, key, value);
            context.Synchronize();
            double forwardSeconds = watch.Elapsed.TotalSeconds;
            // dK and dV are as large as K and V: the backward holds about twice the forward's memory.
            bool backward = 4.0 * key.Length * sizeof(short) < 0.9 * context.MemoryLimit;
            double backwardSeconds = 0;
            AttentionGradients<Half>? grads = null;
            if (backward)
            {
                watch.Restart();
                grads = Fmha.MemoryEfficientAttentionBackward(dO, forward, q, key, value);
                context.Synchronize();
                backwardSeconds = watch.Elapsed.TotalSeconds;
            }
            using var gradients = grads;
            long peak = context.PeakBytes, freeDuring = FreeDeviceBytes(context);

            // The fp64 forward: ReferenceAttention over chunks of keys (small enough for V to stay in cache), merged by
            // log-sum-exp, first within each worker, then across workers.
            watch.Restart();
            double scale = 1 / Math.Sqrt(K);
            var reference = new ReferenceAttention.ForwardResult(new double[Mq * H * K], Enumerable.Repeat(double.NegativeInfinity, H * Mq).ToArray());
            Parallel.For(0, chunks, () => new ReferenceAttention.ForwardResult(new double[Mq * H * K], Enumerable.Repeat(double.NegativeInfinity, H * Mq).ToArray()),
                (c, _, merged) =>
                {
                    int start = c * Chunk, n = Math.Min(Chunk, mkv - start);
                    var (kd, vd) = ReadRows(key, value, start, n, gate);
                    Merge(merged, ReferenceAttention.Forward(new ReferenceAttention.Problem(1, Mq, n, H, H, K, scale), qd, kd, vd), Mq, H, K);
                    return merged;
                },
                merged =>
                {
                    lock (reference)
                        Merge(reference, merged, Mq, H, K);
                });
            var (o, lse) = (reference.Output, reference.Lse);
            var oOut = forward.Output.ToDoubleArray();
            var lseOut = forward.Lse.ToDoubleArray();
            var errors = new List<(string Name, double Error)> { ("O", FiniteError(oOut, o)), ("Lse", FiniteError(lseOut, lse)) };
            bool finite = oOut.All(double.IsFinite) && lseOut.All(double.IsFinite);

            if (grads is not null)
            {
                // The fp64 backward, the textbook way from the fp64 O and LSE: P_ij = exp(s_ij − Lse_i), D_i = dO_i·O_i,
                // dS_ij = P_ij (dO_i·v_j − D_i). dQ_i = scale Σ_j dS_ij k_j of the planted rows, over every key, by chunk;
                // dV_j = Σ_i P_ij dO_i and dK_j = scale Σ_i dS_ij q_i of the planted keys.
                int w = H * K;
                var delta = new double[Mq * H];
                for (int e = 0; e < Mq * H * K; e++)
                    delta[e / K] += dOd[e] * o[e];
                var dqRef = new double[planted.Length * w];
                Parallel.For(0, chunks, () => new double[planted.Length * w],
                    (c, _, dq) =>
                    {
                        int start = c * Chunk, n = Math.Min(Chunk, mkv - start);
                        var (kd, vd) = ReadRows(key, value, start, n, gate);
                        for (int j = 0; j < n; j++)
                            for (int p = 0; p < planted.Length; p++)
                                for (int h = 0; h < H; h++)
                                {
                                    var (_, dS) = Score(qd, kd, vd, dOd, p, j, h, scale, lse[h * Mq + p], delta[p * H + h]);
                                    for (int d = 0; d < K; d++)
                                        dq[(p * H + h) * K + d] += scale * dS * kd[(j * H + h) * K + d];
                                }
                        return dq;
                    },
                    dq =>
                    {
                        lock (dqRef)
                            for (int e = 0; e < dq.Length; e++)
                                dqRef[e] += dq[e];
                    });
                var dkRef = new double[planted.Length * w];
                var dvRef = new double[planted.Length * w];
                var dqOut = new double[planted.Length * w];
                var dkOut = new double[planted.Length * w];
                var dvOut = new double[planted.Length * w];
                var dqAll = grads.Query.ToDoubleArray();
                for (int p = 0; p < planted.Length; p++)
                {
                    Array.Copy(dqAll, p * w, dqOut, p * w, w);
                    var (dk, dv) = ReadRows(grads.Key, grads.Value, planted[p], 1, gate);
                    dk.CopyTo(dkOut, p * w);
                    dv.CopyTo(dvOut, p * w);
                    var (kd, vd) = ReadRows(key, value, planted[p], 1, gate);
                    for (int i = 0; i < Mq; i++)
                        for (int h = 0; h < H; h++)
                        {
                            var (prob, dS) = Score(qd, kd, vd, dOd, i, 0, h, scale, lse[h * Mq + i], delta[i * H + h]);
                            for (int d = 0; d < K; d++)
                            {
                                dvRef[(p * H + h) * K + d] += prob * dOd[(i * H + h) * K + d];
                                dkRef[(p * H + h) * K + d] += scale * dS * qd[(i * H + h) * K + d];
                            }
                        }
                }
                errors.Add(("dQ", FiniteError(dqOut, dqRef)));
                errors.Add(("dK", FiniteError(dkOut, dkRef)));
                errors.Add(("dV", FiniteError(dvOut, dvRef)));
                finite &= dqOut.Concat(dkOut).Concat(dvOut).All(double.IsFinite);
            }
            double referenceSeconds = watch.Elapsed.TotalSeconds;
            // Not the short-row fp16 tolerance (5.9e-3): the other 4.2 million keys each weigh about 1e-7, below fp16's smallest
            // normal, and their rounding reaches 1e-2 (H200: O 6.0e-3, dK 1.6e-2). A key read from the wrong place moves a
            // planted row by about half a V row, a scaled error of 0.3-0.5, so 5e-2 still tells the two apart. Short runs
            // (the CPU's --large-keys) keep the usual tolerance.
            double tolerance = elements > (1L << 31) ? 5e-2 : ReferenceAttention.Tolerance(DType.Float16, K);
            string memory = $"peak {peak / 1e9:0.00} GB held by the library" +
                            (freeBefore >= 0 ? $", device free {freeBefore / 1e9:0.0} → {freeDuring / 1e9:0.0} GB" : "");
            Report(finite && errors.All(e => e.Error <= tolerance) ? "PASS" : "FAIL",
                $"large B1 Mq{Mq} Mkv{mkv} H{H}/{H} K{K} fp16 no mask: K and V {elements:N0} elements each ({(elements > (1L << 31) ? "past" : "NOT past")} 2^31); " +
                $"planted keys [{string.Join(", ", planted)}]; scaled errors vs fp64 {string.Join(" ", errors.Select(e => $"{e.Name} {e.Error:0.0e+0}"))} " +
                $"(tolerance {tolerance:0.0e+0}){(finite ? "" : ", NON-FINITE output")}{(backward ? "" : "; backward skipped: dK and dV do not fit")}; " +
                $"fill {fillSeconds:0.0} s, forward {forwardSeconds:0.00} s, backward {backwardSeconds:0.00} s, reference {referenceSeconds:0} s, total {total.Elapsed.TotalSeconds:0} s; {memory}");
        }

        private const int LargeHeads = 8, LargeHeadDim = 64;

        /// <summary>Folds <paramref name="part"/> (attention over other keys) into <paramref name="into"/>: LSEs add in log space, O by weight.</summary>
        private static void Merge(ReferenceAttention.ForwardResult into, ReferenceAttention.ForwardResult part, int mq, int heads, int headDim)
        {
            for (int h = 0; h < heads; h++)
            {
                for (int i = 0; i < mq; i++)
                {
                    double a = into.Lse[h * mq + i], b = part.Lse[h * mq + i];
                    if (double.IsNegativeInfinity(b))
                        continue;
                    double lse = double.IsNegativeInfinity(a) ? b : Math.Max(a, b) + Math.Log(Math.Exp(a - Math.Max(a, b)) + Math.Exp(b - Math.Max(a, b)));
                    double wa = Math.Exp(a - lse), wb = Math.Exp(b - lse);
                    for (int d = 0; d < headDim; d++)
                    {
                        long e = ((long)i * heads + h) * headDim + d;
                        into.Output[e] = wa * into.Output[e] + wb * part.Output[e];
                    }
                    into.Lse[h * mq + i] = lse;
                }
            }
        }

        /// <summary>Rows [start, start + n) of K and V as doubles (one reader at a time).</summary>
        private static (double[] K, double[] V) ReadRows(Tensor<Half> key, Tensor<Half> value, int start, int n, object gate)
        {
            lock (gate)
            {
                using var k = key.Narrow(1, start, n);
                using var v = value.Narrow(1, start, n);
                return (k.ToDoubleArray(), v.ToDoubleArray());
            }
        }

        /// <summary>P_ij and dS_ij of query row i and key row j (of the given arrays) in head h of the large case.</summary>
        private static (double P, double dS) Score(double[] q, double[] k, double[] v, double[] dO, int i, int j, int h, double scale, double lse, double delta)
        {
            const int H = LargeHeads, K = LargeHeadDim;
            double s = 0, dP = 0;
            for (int d = 0; d < K; d++)
            {
                s += q[(i * H + h) * K + d] * k[(j * H + h) * K + d];
                dP += dO[(i * H + h) * K + d] * v[(j * H + h) * K + d];
            }
            double p = Math.Exp(s * scale - lse);
            return (p, p * (dP - delta));
        }

        private static long FreeDeviceBytes(XFormersContext context) =>
            context.Accelerator is CudaAccelerator cuda ? cuda.GetFreeMemory() : -1;

        // ---------------------------------------------------------------------------------------------------------
        // 2. The non-finite matrix.

        /// <summary>A NaN or infinity placed in one entry: q, k, v or dO at [0, Row, head 1, column 3], or the bias at [0, head 1, Row, Key].</summary>
        private sealed record Injection(string Mask, string Tensor, int Row, float Value, int Key = -1)
        {
            public override string ToString() =>
                $"{Mask,-6} {Tensor}[{(Tensor == "bias" ? $"{Row}, {Key}" : Tensor is "k" or "v" ? $"key {Row}" : $"row {Row}")}] = {(float.IsNaN(Value) ? "NaN" : "+Inf")}";
        }

        private const int MatrixM = 150, MatrixHeads = 2, PoisonedHead = 1, PoisonedColumn = 3;

        /// <summary>Packed segments for the matrix: the boundary sits inside a 64- and a 128-key tile.</summary>
        private static readonly int[] Segments = { 70, 80 };

        /// <summary>
        /// Causal entries at row or key 100 (rows 64–99 and 0–99 share a tile with key 100 on the 64- and 128-key paths but
        /// do not see it); packed entries in the second segment (90) and the first (30); a bias entry seen (100, 40) and
        /// one behind the mask (40, 100).
        /// </summary>
        private static readonly Injection[] Matrix =
        {
            new("causal", "q", 100, float.NaN),
            new("causal", "k", 100, float.NaN),
            new("causal", "k", 100, float.PositiveInfinity),
            new("causal", "v", 100, float.NaN),
            new("causal", "v", 100, float.PositiveInfinity),
            new("causal", "dO", 100, float.NaN),
            new("causal", "bias", 100, float.NaN, Key: 40),
            new("causal", "bias", 100, float.PositiveInfinity, Key: 40),
            new("causal", "bias", 40, float.NaN, Key: 100),
            new("causal", "bias", 40, float.PositiveInfinity, Key: 100),
            new("packed", "q", 90, float.NaN),
            new("packed", "k", 90, float.NaN),
            new("packed", "v", 90, float.NaN),
            new("packed", "v", 30, float.NaN),
            new("packed", "dO", 90, float.NaN),
        };

        /// <summary>
        /// The dtype and head dim of each kernel family checked (the masks pick the variants). Head dim 256 has stock variants
        /// without a bias and with no mask or a causal one: its family takes the causal cases without a bias.
        /// </summary>
        private static readonly (DType DType, int HeadDim)[] Families =
        {
            (DType.Float32, 64), (DType.Float16, 64), (DType.Float16, 128), (DType.BFloat16, 64), (DType.BFloat16, 128),
            (DType.Float16, 256), (DType.BFloat16, 256),
        };

        private static void NonFiniteMatrix(XFormersContext context, string? filter)
        {
            foreach (var (dtype, headDim) in Families)
            {
                string name = $"{(dtype == DType.Float32 ? "F32" : dtype == DType.Float16 ? "F16" : "BF16")}_{headDim}";
                if (!Program.Matches(name, filter))
                    continue;
                // HeadDim 64's sm_90a forward has a 128-row module for small grids, which these shapes take: the variant's
                // first module (192 rows, three consumer warpgroups) is checked too.
                bool smallGrid = headDim == 64 && dtype != DType.Float32 && Hopper.HopperLauncher.IsAvailable(context.Accelerator);
                foreach (bool first in smallGrid ? new[] { false, true } : new[] { false })
                {
                    string family = first ? name + "/192" : name;
                    foreach (var injection in Matrix.Where(x => headDim < 256 || x.Mask == "causal" && x.Tensor != "bias"))
                    {
                        var watch = Stopwatch.StartNew();
                        try
                        {
                            Hopper.HopperLauncher.ForceFirstModule = first;
                            var (status, line) = dtype switch
                            {
                                DType.Float32 => Check<float>(context, injection, headDim),
                                DType.Float16 => Check<Half>(context, injection, headDim),
                                _ => Check<BFloat16>(context, injection, headDim),
                            };
                            Report(status, $"nonfinite {family,-10} {injection,-26} {line} ({watch.ElapsedMilliseconds} ms)");
                        }
                        catch (Exception ex)
                        {
                            Report("FAIL", $"nonfinite {family,-10} {injection,-26} {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
                        }
                        finally
                        {
                            Hopper.HopperLauncher.ForceFirstModule = false;
                        }
                    }
                }
            }
        }

        /// <summary>One output compared with fp64: rows (of Width values) it should turn non-finite and does not, and the reverse.</summary>
        private sealed record Pattern(string Name, int Expected, int Missed, int Leaked, double Error);

        private static Pattern Compare(string name, double[] actual, double[] expected, int width)
        {
            var expectedRows = new HashSet<int>();
            var missedRows = new HashSet<int>();
            var leakedRows = new HashSet<int>();
            for (int e = 0; e < expected.Length; e++)
            {
                bool shouldBe = !double.IsFinite(expected[e]), isBad = !double.IsFinite(actual[e]);
                if (shouldBe)
                    expectedRows.Add(e / width);
                if (shouldBe && !isBad)
                    missedRows.Add(e / width);
                if (isBad && !shouldBe)
                    leakedRows.Add(e / width);
            }
            return new Pattern(name, expectedRows.Count, missedRows.Count, leakedRows.Count, FiniteError(actual, expected));
        }

        /// <summary>
        /// Forward and backward of one poisoned call against the fp64 reference on the same (rounded) inputs. PASS: every
        /// output non-finite exactly where the reference is, the rest within tolerance. Every kernel family computes a tile
        /// that saw a NaN again (docs/RELIABILITY.md), so any leak fails.
        /// </summary>
        private static (string Status, string Line) Check<T>(XFormersContext context, Injection x, int headDim)
            where T : unmanaged
        {
            const int M = MatrixM, H = MatrixHeads;
            int[] shape = { 1, M, H, headDim };
            var data = new Dictionary<string, float[]>
            {
                ["q"] = HostRandom.Normal(11, M * H * headDim),
                ["k"] = HostRandom.Normal(12, M * H * headDim),
                ["v"] = HostRandom.Normal(13, M * H * headDim),
                ["dO"] = HostRandom.Normal(14, M * H * headDim),
                ["bias"] = HostRandom.Normal(15, H * M * M),
            };
            int at = x.Tensor == "bias" ? (PoisonedHead * M + x.Row) * M + x.Key : (x.Row * H + PoisonedHead) * headDim + PoisonedColumn;
            data[x.Tensor][at] = x.Value;

            using var q = Tensor<T>.FromFloats(context, data["q"], shape);
            using var k = Tensor<T>.FromFloats(context, data["k"], shape);
            using var v = Tensor<T>.FromFloats(context, data["v"], shape);
            using var dO = Tensor<T>.FromFloats(context, data["dO"], shape);
            using var bias = x.Tensor == "bias" ? Tensor<T>.FromFloats(context, data["bias"], 1, H, M, M) : null;
            AttentionBias mask = x.Mask == "causal" ? new LowerTriangularMask() : BlockDiagonalMask.FromSeqlens(Segments);
            var attnBias = bias is null ? mask : mask.WithTensorBias(bias, requiresGrad: true);

            var kernel = (AttentionKernel<T>)Fmha.SelectKernel(q, k, v, attnBias, needBackward: true);
            var accelerator = context.Accelerator;
            string forwardPath = kernel.UsesHopperForward(accelerator) ? "sm90a" : kernel.UsesTensorCores(accelerator) ? "mma" : "simt";
            string backwardPath = kernel.UsesHopperBackward(accelerator) ? "sm90a" : kernel.UsesTensorCoreBackward(accelerator) ? "mma" : "simt";

            using var forward = Fmha.MemoryEfficientAttentionForward(q, k, v, attnBias);
            using var grads = Fmha.MemoryEfficientAttentionBackward(dO, forward, q, k, v, attnBias);

            var p = ReferenceAttention.ProblemFor(q, k, attnBias);
            var (qd, kd, vd) = (q.ToDoubleArray(), k.ToDoubleArray(), v.ToDoubleArray());
            var f = ReferenceAttention.Forward(p, qd, kd, vd);
            var g = ReferenceAttention.Backward(p, qd, kd, vd, dO.ToDoubleArray());
            var patterns = new List<Pattern>
            {
                Compare("O", forward.Output.ToDoubleArray(), f.Output, headDim),
                Compare("Lse", forward.Lse.ToDoubleArray(), f.Lse, 1),
                Compare("dQ", grads.Query.ToDoubleArray(), g.Query, headDim),
                Compare("dK", grads.Key.ToDoubleArray(), g.Key, headDim),
                Compare("dV", grads.Value.ToDoubleArray(), g.Value, headDim),
            };
            if (grads.Bias is not null)
                patterns.Add(Compare("dBias", grads.Bias.ToDoubleArray(), g.Bias, M));

            double tolerance = ReferenceAttention.Tolerance(ElementType.Of<T>(), headDim);
            double error = patterns.Max(r => r.Error);
            var leaks = patterns.Where(r => r.Leaked > 0).ToArray();
            string status = patterns.Any(r => r.Missed > 0) || error > tolerance || leaks.Length > 0 ? "FAIL" : "PASS";
            string line = $"{forwardPath}/{backwardPath} non-finite rows: " + string.Join(" ", patterns.Select(r => $"{r.Name} {r.Expected}"));
            if (patterns.Any(r => r.Missed > 0))
                line += "; MISSED (finite where fp64 is not): " + string.Join(" ", patterns.Where(r => r.Missed > 0).Select(r => $"{r.Name} {r.Missed} rows"));
            if (leaks.Length > 0)
                line += "; leaked into: " + string.Join(" ", leaks.Select(r => $"{r.Name} {r.Leaked} rows"));
            return (status, line + $"; error {error:0.0e+0} (tolerance {tolerance:0.0e+0})");
        }

        // ---------------------------------------------------------------------------------------------------------
        // 3. Bad inputs.

        /// <summary>A bad call: what it throws and the argument it names; <c>Arrange</c> builds its tensors and returns the call.</summary>
        private sealed record BadInput(string Name, Type Exception, string Names, Func<XFormersContext, XFormersContext, Action> Arrange);

        private static readonly int[] Q = { 1, 8, 2, 64 };

        private static Tensor<Half> F(XFormersContext c, params int[] shape) => Tensor<Half>.RandomNormal(c, shape.Sum(), 1f, shape);

        private static Tensor<Half> Disposed(XFormersContext c, params int[] shape)
        {
            var t = F(c, shape);
            t.Dispose();
            return t;
        }

        /// <summary>A backward with every argument valid, except those given.</summary>
        private static void Backward(
            XFormersContext c, Tensor<float>? lse = null, Tensor<Half>? key = null, Tensor<Half>? gradQuery = null, Tensor<Half>? gradKey = null,
            Tensor<Half>? gradValue = null)
        {
            Fmha.MemoryEfficientAttentionBackward(
                F(c, Q), F(c, Q), lse ?? Tensor<float>.Zeros(c, 1, 2, 8), F(c, Q), key ?? F(c, Q), F(c, Q),
                gradQuery ?? F(c, Q), gradKey ?? F(c, Q), gradValue ?? F(c, Q));
        }

        private static BadInput Arg(string name, string names, Func<XFormersContext, XFormersContext, Action> arrange) => new(name, typeof(ArgumentException), names, arrange);

        private static BadInput Gone(string name, string names, Func<XFormersContext, XFormersContext, Action> arrange) => new(name, typeof(ObjectDisposedException), names, arrange);

        private static readonly BadInput[] BadInputCases =
        {
            Arg("query rank 3", "query", (c, _) => { var t = F(c, 2, 8, 64); return () => Fmha.MemoryEfficientAttention(t, t, t); }),
            Arg("value shape differs", "value", (c, _) => { var (q, v) = (F(c, Q), F(c, 1, 9, 2, 64)); return () => Fmha.MemoryEfficientAttention(q, q, v); }),
            Arg("key head dim differs", "key", (c, _) => { var (q, k) = (F(c, Q), F(c, 1, 8, 2, 32)); return () => Fmha.MemoryEfficientAttention(q, k, k); }),
            Arg("kv heads do not divide", "key", (c, _) => { var (q, k) = (F(c, 1, 8, 4, 64), F(c, 1, 8, 3, 64)); return () => Fmha.MemoryEfficientAttention(q, k, k); }),
            Arg("head dim without a variant", "query", (c, _) => { var t = F(c, 1, 8, 2, 40); return () => Fmha.MemoryEfficientAttention(t, t, t); }),
            Arg("int element type", "query", (c, _) => { var t = Tensor<int>.Zeros(c, Q); return () => Fmha.MemoryEfficientAttention(t, t, t); }),
            Arg("scale NaN", "scale", (c, _) => { var t = F(c, Q); return () => Fmha.MemoryEfficientAttention(t, t, t, null, float.NaN); }),
            Arg("seqlens sum to fewer tokens", "attnBias", (c, _) => { var t = F(c, Q); return () => Fmha.MemoryEfficientAttention(t, t, t, BlockDiagonalMask.FromSeqlens(new[] { 3, 4 })); }),
            Arg("bias wrong shape", "attnBias", (c, _) => { var (t, b) = (F(c, Q), F(c, 1, 2, 8, 7)); return () => Fmha.MemoryEfficientAttention(t, t, t, new TensorBias<Half>(b)); }),
            Arg("bias of another dtype", "attnBias", (c, _) => { var (t, b) = (F(c, Q), Tensor<float>.Zeros(c, 1, 2, 8, 8)); return () => Fmha.MemoryEfficientAttention(t, t, t, new TensorBias<float>(b)); }),
            Arg("output wrong shape", "output", (c, _) => { var (t, o, l) = (F(c, Q), F(c, 1, 8, 2, 32), Tensor<float>.Zeros(c, 1, 2, 8)); return () => Fmha.MemoryEfficientAttentionForward(t, t, t, o, l); }),
            Arg("lse wrong shape", "lse", (c, _) => { var (t, o, l) = (F(c, Q), F(c, Q), Tensor<float>.Zeros(c, 1, 8, 2)); return () => Fmha.MemoryEfficientAttentionForward(t, t, t, o, l); }),
            Arg("output aliases query", "output", (c, _) => { var (q, k, l) = (F(c, Q), F(c, Q), Tensor<float>.Zeros(c, 1, 2, 8)); return () => Fmha.MemoryEfficientAttentionForward(q, k, k, q, l); }),
            Arg("output aliases a view of value", "output", (c, _) => { var (q, v, l) = (F(c, 1, 16, 2, 64), F(c, 1, 16, 2, 64), Tensor<float>.Zeros(c, 1, 2, 16)); return () => Fmha.MemoryEfficientAttentionForward(q, q, v, v.Narrow(1, 0, 16), l); }),
            Arg("gradQuery aliases gradKey", "gradQuery", (c, _) => { var g = F(c, Q); return () => Backward(c, gradQuery: g, gradKey: g); }),
            Arg("gradKey aliases key", "gradKey", (c, _) => { var k = F(c, Q); return () => Backward(c, key: k, gradKey: k); }),
            Gone("disposed query", "query", (c, _) => { var (q, k) = (Disposed(c, Q), F(c, Q)); return () => Fmha.MemoryEfficientAttention(q, k, k); }),
            Gone("disposed key", "key", (c, _) => { var (q, k) = (F(c, Q), Disposed(c, Q)); return () => Fmha.MemoryEfficientAttention(q, k, q); }),
            Gone("view of a disposed value", "value", (c, _) => { var (q, parent) = (F(c, Q), F(c, Q)); var v = parent.Reshape(Q); parent.Dispose(); return () => Fmha.MemoryEfficientAttention(q, q, v); }),
            Gone("disposed bias", "attnBias", (c, _) => { var (t, b) = (F(c, Q), Disposed(c, 1, 2, 8, 8)); return () => Fmha.MemoryEfficientAttention(t, t, t, new TensorBias<Half>(b)); }),
            Gone("disposed output", "output", (c, _) => { var (t, o, l) = (F(c, Q), Disposed(c, Q), Tensor<float>.Zeros(c, 1, 2, 8)); return () => Fmha.MemoryEfficientAttentionForward(t, t, t, o, l); }),
            Gone("disposed lse", "lse", (c, _) => { var l = Tensor<float>.Zeros(c, 1, 2, 8); l.Dispose(); return () => Backward(c, lse: l); }),
            Gone("disposed forward", "forward", (c, _) => { var q = F(c, Q); var fwd = Fmha.MemoryEfficientAttentionForward(q, q, q); fwd.Dispose(); return () => Fmha.MemoryEfficientAttentionBackward(q, fwd, q, q, q); }),
            Gone("disposed gradValue", "gradValue", (c, _) => { var g = Disposed(c, Q); return () => Backward(c, gradValue: g); }),
            Gone("ToArray after dispose", "this", (c, _) => { var t = Disposed(c, Q); return () => t.ToArray(); }),
            Arg("key on another context", "key", (c, other) => { var (q, k) = (F(c, Q), F(other, Q)); return () => Fmha.MemoryEfficientAttention(q, k, q); }),
            Arg("output on another context", "output", (c, other) => { var (q, o, l) = (F(c, Q), F(other, Q), Tensor<float>.Zeros(c, 1, 2, 8)); return () => Fmha.MemoryEfficientAttentionForward(q, q, q, o, l); }),
            Arg("forward from another context", "forward", (c, other) => { var (q, q2) = (F(c, Q), F(other, Q)); var fwd = Fmha.MemoryEfficientAttentionForward(q2, q2, q2); return () => Fmha.MemoryEfficientAttentionBackward(q, fwd, q, q, q); }),
            Arg("gradQuery on another context", "gradQuery", (c, other) => { var g = F(other, Q); return () => Backward(c, gradQuery: g); }),
            Arg("a 64 TiB tensor", "shape", (c, _) => () => Tensor<Half>.Empty(c, 1 << 15, 1 << 15, 1 << 15)),
            Arg("byte count past 2^63", "shape", (c, _) => () => Tensor<float>.Empty(c, 1 << 30, 1 << 30, 4)),
            Arg("kernel of another dtype", "kernel", (c, _) => { var (q, f32) = (F(c, Q), Tensor<float>.Zeros(c, Q)); var kernel = Fmha.SelectKernel(f32, f32, f32); return () => Fmha.MemoryEfficientAttentionForward(q, q, q, kernel: kernel); }),
        };

        /// <summary>
        /// Each bad call throws the documented exception naming the documented argument, and launches no attention kernel
        /// (<see cref="AttentionKernel.LaunchObserver"/> counts them); then the same context still computes attention right.
        /// </summary>
        private static void BadInputs(XFormersContext context)
        {
            using var other = XFormersContext.Create(context.IsCuda ? AcceleratorPreference.Cuda : AcceleratorPreference.Cpu);
            int launches = 0;
            foreach (var bad in BadInputCases)
            {
                string line;
                bool ok;
                try
                {
                    var act = bad.Arrange(context, other);
                    launches = 0;
                    AttentionKernel.LaunchObserver = _ => launches++;
                    Exception? thrown = null;
                    try
                    {
                        act();
                    }
                    catch (Exception ex)
                    {
                        thrown = ex;
                    }
                    finally
                    {
                        AttentionKernel.LaunchObserver = null;
                    }
                    string? named = thrown switch
                    {
                        ObjectDisposedException disposed => disposed.ObjectName,
                        ArgumentException argument => argument.ParamName,
                        _ => null,
                    };
                    ok = thrown?.GetType() == bad.Exception && named == bad.Names && launches == 0;
                    line = thrown is null
                        ? $"nothing thrown (expected {bad.Exception.Name} naming {bad.Names})"
                        : $"{thrown.GetType().Name} naming {named ?? "nothing"}{(ok ? "" : $" (expected {bad.Exception.Name} naming {bad.Names})")}, {launches} launches: {thrown.Message.Split('\n')[0]}";
                }
                catch (Exception ex)
                {
                    ok = false;
                    line = $"setting up the case threw {ex.GetType().Name}: {ex.Message.Split('\n')[0]}";
                }
                Report(ok ? "PASS" : "FAIL", $"badinput {bad.Name,-30} {line}");
            }

            // The context is not poisoned: a causal fp16 call after all of them matches fp64.
            try
            {
                context.Synchronize();
                using var q = Tensor<Half>.FromFloats(context, HostRandom.Normal(21, 1 * 100 * 2 * 64), 1, 100, 2, 64);
                using var k = Tensor<Half>.FromFloats(context, HostRandom.Normal(22, 1 * 100 * 2 * 64), 1, 100, 2, 64);
                using var v = Tensor<Half>.FromFloats(context, HostRandom.Normal(23, 1 * 100 * 2 * 64), 1, 100, 2, 64);
                var mask = new LowerTriangularMask();
                launches = 0;
                AttentionKernel.LaunchObserver = _ => launches++;
                using var o = Fmha.MemoryEfficientAttention(q, k, v, mask);
                AttentionKernel.LaunchObserver = null;
                var expected = ReferenceAttention.Forward(ReferenceAttention.ProblemFor(q, k, mask), q.ToDoubleArray(), k.ToDoubleArray(), v.ToDoubleArray());
                double error = ReferenceAttention.ScaledError(o.ToDoubleArray(), expected.Output);
                double tolerance = ReferenceAttention.Tolerance(DType.Float16, 64);
                Report(error <= tolerance && launches > 0 ? "PASS" : "FAIL",
                    $"badinput {"context still works",-30} causal fp16 B1 M100 H2 K64 after {BadInputCases.Length} bad calls: error {error:0.0e+0} vs fp64 (tolerance {tolerance:0.0e+0}), {launches} launches seen");
            }
            catch (Exception ex)
            {
                Report("FAIL", $"badinput {"context still works",-30} {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
            }
        }

        // ---------------------------------------------------------------------------------------------------------
        // 4. Leak check.

        /// <summary>
        /// <paramref name="rounds"/> rounds of: create a context of the harness's kind, run a causal fp16 forward, dispose.
        /// Process resident memory (after a full GC), managed heap and, on CUDA, device memory in use are sampled after ten
        /// warm-up rounds, halfway and at the end; growth over the second half (steady state: a leak grows linearly, the
        /// allocator's and JIT's warm-up does not) of more than 1 MB a round fails.
        /// </summary>
        private static void Leak(XFormersContext context, int rounds)
        {
            const int Warmup = 10;
            var preference = context.IsCuda ? AcceleratorPreference.Cuda : AcceleratorPreference.Cpu;
            var watch = Stopwatch.StartNew();
            var q = HostRandom.Normal(31, 1 * 256 * 4 * 64);
            var samples = new List<(long Rss, long Heap, long Used, double Seconds)>();
            int half = Math.Max(1, rounds / 2);
            try
            {
                for (int r = 0; r < Warmup + rounds; r++)
                {
                    long used;
                    using (var round = XFormersContext.Create(preference))
                    {
                        using var t = Tensor<Half>.FromFloats(round, q, 1, 256, 4, 64);
                        using var o = Fmha.MemoryEfficientAttention(t, t, t, new LowerTriangularMask());
                        if (!o.ToFloatArray().All(float.IsFinite))
                            throw new InvalidOperationException($"round {r}: a non-finite output");
                        used = round.Accelerator is CudaAccelerator cuda ? cuda.MemorySize - cuda.GetFreeMemory() : 0;
                    }
                    if (r == Warmup - 1 || r == Warmup - 1 + half || r == Warmup + rounds - 1)
                    {
                        GC.Collect();
                        GC.WaitForPendingFinalizers();
                        long heap = GC.GetTotalMemory(forceFullCollection: true);
                        samples.Add((Process.GetCurrentProcess().WorkingSet64, heap, used, watch.Elapsed.TotalSeconds));
                    }
                }
            }
            catch (Exception ex)
            {
                Report("FAIL", $"leak {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
                return;
            }
            var (start, middle, end) = (samples[0], samples[1], samples[^1]);
            int secondHalf = rounds - half;
            double rssSlope = (end.Rss - middle.Rss) / (double)secondHalf, usedSlope = (end.Used - middle.Used) / (double)secondHalf;
            bool ok = rssSlope <= 1 << 20 && usedSlope <= 1 << 20;
            string device = context.IsCuda
                ? $"device memory in use {start.Used / 1e6:0} → {middle.Used / 1e6:0} → {end.Used / 1e6:0} MB ({usedSlope / 1e3:0.0} kB/round)"
                : "device memory: the CPU's is the process's";
            Report(ok ? "PASS" : "FAIL",
                $"leak {rounds} rounds of create context / causal fp16 forward B1 M256 H4 K64 / dispose, after {Warmup} warm-up rounds: " +
                $"RSS {start.Rss / 1e6:0} → {middle.Rss / 1e6:0} → {end.Rss / 1e6:0} MB ({(end.Rss - start.Rss) / (double)rounds / 1e3:0.0} kB/round over all, " +
                $"{rssSlope / 1e3:0.0} kB/round over the second half); managed heap {(end.Heap - start.Heap) / (double)rounds / 1e3:0.0} kB/round; {device}; " +
                $"limit 1 MB/round over the second half; {(end.Seconds - start.Seconds) / rounds * 1000:0} ms/round");
        }
    }
}
