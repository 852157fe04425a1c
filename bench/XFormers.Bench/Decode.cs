using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using XFormers.Dsl;
using XFormers.Kernels;
using XFormers.Reference;

namespace XFormers.Bench
{
    /// <summary>
    /// KV-cache decoding on the device: first the KV-cache masks and split-KV against the fp64 reference (one sequence
    /// at a time, on its own keys), then the decode table: one new token per sequence over long caches, dense, padded
    /// and paged, with the split the heuristic picks and with forced splits, as milliseconds and GB/s of K and V read.
    /// </summary>
    internal static class Decode
    {
        private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

        public static int Run(XFormersContext context, string outDir, bool checkOnly)
        {
            int failures = Check<ILGPU.Half>(context) + Check<BFloat16>(context);
            Console.WriteLine(failures == 0 ? "decode conformance: all PASS" : $"decode conformance: {failures} FAIL");
            if (checkOnly)
                return failures;
            Directory.CreateDirectory(outDir);
            using var csv = new StreamWriter(Path.Combine(outDir, "decode.csv"));
            csv.WriteLine("name,dtype,batch,hq,hkv,k,cache,layout,chunks,ms,gbps");
            foreach (var (batch, cache) in new[] { (64, 8192), (8, 32768) })
            {
                Table<ILGPU.Half>(context, csv, batch, cache);
                Table<BFloat16>(context, csv, batch, cache);
            }
            return failures;
        }

        private static void Table<T>(XFormersContext context, StreamWriter csv, int batch, int cache)
            where T : unmanaged
        {
            const int hq = 32, hkv = 8, k = 128;
            string dtype = ElementType.Of<T>().ToString();
            using var q = Tensor<T>.RandomNormal(context, 1, 1f, batch, 1, hq, k);
            using var key = Tensor<T>.RandomNormal(context, 2, 1f, batch, cache, hkv, k);
            using var value = Tensor<T>.RandomNormal(context, 3, 1f, batch, cache, hkv, k);
            var packedQ = q.Reshape(1, batch, hq, k);
            var packedK = key.Reshape(1, batch * cache, hkv, k);
            var packedV = value.Reshape(1, batch * cache, hkv, k);
            double bytes = 2.0 * batch * cache * hkv * k * System.Runtime.InteropServices.Marshal.SizeOf<T>();
            var ones = Enumerable.Repeat(1, batch).ToArray();
            var lengths = Enumerable.Repeat(cache, batch).ToArray();
            var padded = BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(ones, cache, lengths);
            using var output = Tensor<T>.Empty(context, 1, batch, hq, k);
            using var lse = Tensor<float>.Empty(context, 1, hq, batch);

            void Row(string layout, string chunks, Action run)
            {
                double ms = Benchmarks.Median(context, run);
                string line = string.Join(",", $"decode-b{batch}-c{cache}", dtype, batch, hq, hkv, k, cache, layout, chunks,
                    ms.ToString("0.000", Invariant), (bytes / ms / 1e6).ToString("0.0", Invariant));
                Console.WriteLine(line);
                csv.WriteLine(line);
                csv.Flush();
            }

            // "dense" and "padded" call the API, which allocates O each call; "in place" rows write a preallocated O and LSE.
            Row("dense", "auto", () => Fmha.MemoryEfficientAttention(q, key, value, new LowerTriangularFromBottomRightMask()).Dispose());
            Row("padded", "auto", () => Fmha.MemoryEfficientAttention(packedQ, packedK, packedV, padded).Dispose());
            Row("padded in place", "auto", () => Fmha.KvCacheForward(packedQ, packedK, packedV, padded, null, output, lse));
            // The ILGPU decode kernel on the same call, where the driver-launched module would take it.
            XFormers.Hopper.HopperDecode.Disabled = true;
            Row("padded in place, ILGPU kernel", "auto", () => Fmha.KvCacheForward(packedQ, packedK, packedV, padded, null, output, lse));
            XFormers.Hopper.HopperDecode.Disabled = false;
            foreach (int chunks in new[] { 1, 2, 4, 8, 16, 32 })
                Row("padded", chunks.ToString(Invariant), () => Fmha.KvCacheForward(packedQ, packedK, packedV, padded, null, output, lse, chunks));
            foreach (int pageSize in new[] { 16, 256 })
            {
                // The same cache in shuffled pages, gathered on the device.
                int pages = batch * cache / pageSize, perSequence = cache / pageSize;
                var order = Enumerable.Range(0, pages).OrderBy(p => (p * 7919L) % pages).ToArray();
                var table = new int[batch, perSequence];
                var rows = new int[batch * cache];
                for (int s = 0; s < batch; s++)
                    for (int p = 0; p < perSequence; p++)
                    {
                        table[s, p] = order[s * perSequence + p];
                        for (int t = 0; t < pageSize; t++)
                            rows[table[s, p] * pageSize + t] = (s * perSequence + p) * pageSize + t;
                    }
                using var map = Tensor<int>.FromArray(context, rows, rows.Length);
                using var pagedK = Tensor<T>.Empty(context, 1, batch * cache, hkv, k);
                using var pagedV = Tensor<T>.Empty(context, 1, batch * cache, hkv, k);
                RowGather.Gather(context.Accelerator, packedK.View, pagedK.View, map.View, hkv * k);
                RowGather.Gather(context.Accelerator, packedV.View, pagedV.View, map.View, hkv * k);
                var paged = padded.MakePaged(table, pageSize);
                Row($"paged{pageSize}", "auto", () => Fmha.MemoryEfficientAttention(packedQ, pagedK, pagedV, paged).Dispose());
                Row($"paged{pageSize} in place", "auto", () => Fmha.KvCacheForward(packedQ, pagedK, pagedV, paged, null, output, lse));
            }
        }

        /// <summary>Ragged KV-cache cases, forced splits included, against the fp64 reference per sequence; the number of misses.</summary>
        private static int Check<T>(XFormersContext context)
            where T : unmanaged
        {
            int failures = 0;
            // Up to 16 queries a sequence (the tiled kernels as pieces), up to 2 (8 rows a key/value head: the decode kernels;
            // causal ones on the ILGPU kernel), and one (the driver-launched module on the H200, HeadDim 256 too, pages of 5).
            var sets = new[] { (new[] { 1, 3, 0, 1, 16, 2 }, new[] { 64, 128 }, 16), (new[] { 1, 2, 0, 1, 2, 1 }, new[] { 64, 128 }, 16), (new[] { 1, 1, 0, 1, 1, 1 }, new[] { 64, 128, 256 }, 5) };
            foreach (var (qSeqlen, headDims, pageSize) in sets)
            foreach (int k in headDims)
                foreach (bool causal in new[] { false, true })
                    foreach (bool paged in new[] { false, true })
                        foreach (int? chunks in new int?[] { null, 1, 3 })
                        {
                            var watch = Stopwatch.StartNew();
                            string name = $"{ElementType.Of<T>()} K{k} q [{string.Join(" ", qSeqlen)}] {(causal ? "causal-offset" : "padded")}{(paged ? $" paged{pageSize}" : "")} chunks {chunks?.ToString(Invariant) ?? "auto"}";
                            double error;
                            try { error = CheckOne<T>(context, qSeqlen, k, causal, paged ? pageSize : 0, chunks); }
                            catch (Exception ex) { error = double.PositiveInfinity; name += $" {ex.GetType().Name}: {ex.Message.Split('\n')[0]}"; }
                            var dtype = ElementType.Of<T>();
                            bool ok = error < ReferenceAttention.Tolerance(dtype, k);
                            failures += ok ? 0 : 1;
                            Console.WriteLine($"{(ok ? "PASS" : "FAIL")} decode {name}: O and LSE error {error:0.0e+0} ({watch.ElapsedMilliseconds} ms)");
                        }
            // Dense decoding (the batch as sequences of equal lengths), 1 and 2 queries, causal from the bottom right.
            foreach (int k in new[] { 64, 128, 256 })
                foreach (int mq in new[] { 1, 2 })
                {
                    const int batch = 3, mkv = 3000, hq = 8, hkv = 2;
                    using var q = Tensor<T>.RandomNormal(context, 1, 1f, batch, mq, hq, k);
                    using var key = Tensor<T>.RandomNormal(context, 2, 1f, batch, mkv, hkv, k);
                    using var value = Tensor<T>.RandomNormal(context, 3, 1f, batch, mkv, hkv, k);
                    using var o = Fmha.MemoryEfficientAttention(q, key, value, new LowerTriangularFromBottomRightMask());
                    var problem = new ReferenceAttention.Problem(batch, mq, mkv, hq, hkv, k, 1.0 / Math.Sqrt(k), MaskKind.CausalFromBottomRight);
                    double error = ReferenceAttention.ScaledError(
                        o.ToDoubleArray(), ReferenceAttention.Forward(problem, q.ToDoubleArray(), key.ToDoubleArray(), value.ToDoubleArray()).Output);
                    bool ok = error < ReferenceAttention.Tolerance(ElementType.Of<T>(), k);
                    failures += ok ? 0 : 1;
                    Console.WriteLine($"{(ok ? "PASS" : "FAIL")} decode {ElementType.Of<T>()} K{k} dense B{batch} Mq{mq} over {mkv} keys: O error {error:0.0e+0}");
                }
            return failures;
        }

        private static double CheckOne<T>(XFormersContext context, int[] qSeqlen, int k, bool causal, int pageSize, int? chunks)
            where T : unmanaged
        {
            const int hq = 8, hkv = 2, padding = 1280;
            bool paged = pageSize > 0;
            int[] kvSeqlen = { 1200, 1000, 5, 0, 17, 1 };
            int count = qSeqlen.Length, mq = qSeqlen.Sum();
            KvCacheMask mask = causal
                ? BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(qSeqlen, padding, kvSeqlen)
                : BlockDiagonalPaddedKeysMask.FromSeqlens(qSeqlen, padding, kvSeqlen);
            int[][] keyRows = kvSeqlen.Select((n, s) => Enumerable.Range(s * padding, n).ToArray()).ToArray();
            if (paged)
            {
                // Pages in reverse order: sequence s's page p is physical page (pages − 1 − (s · perSequence + p)).
                int perSequence = padding / pageSize, pages = count * perSequence;
                var table = new int[count, perSequence];
                for (int s = 0; s < count; s++)
                    for (int p = 0; p < perSequence; p++)
                        table[s, p] = pages - 1 - (s * perSequence + p);
                mask = mask is BlockDiagonalPaddedKeysMask m ? m.MakePaged(table, pageSize) : ((BlockDiagonalCausalWithOffsetPaddedKeysMask)mask).MakePaged(table, pageSize);
                keyRows = kvSeqlen.Select((n, s) => Enumerable.Range(0, n).Select(t => table[s, t / pageSize] * pageSize + t % pageSize).ToArray()).ToArray();
            }
            using var q = Tensor<T>.RandomNormal(context, 1, 1f, 1, mq, hq, k);
            using var key = Tensor<T>.RandomNormal(context, 2, 1f, 1, count * padding, hkv, k);
            using var value = Tensor<T>.RandomNormal(context, 3, 1f, 1, count * padding, hkv, k);
            using var output = Tensor<T>.Empty(context, 1, mq, hq, k);
            using var lse = Tensor<float>.Empty(context, 1, hq, mq);
            Fmha.KvCacheForward(q, key, value, mask, null, output, lse, chunks);

            double[] qd = q.ToDoubleArray(), kd = key.ToDoubleArray(), vd = value.ToDoubleArray();
            var expectedO = new double[qd.Length];
            var expectedLse = new double[hq * mq];
            for (int s = 0; s < count; s++)
            {
                int n = qSeqlen[s], start = mask.QSeqStarts[s];
                var p = new ReferenceAttention.Problem(1, n, keyRows[s].Length, hq, hkv, k, 1.0 / Math.Sqrt(k), causal ? MaskKind.CausalFromBottomRight : MaskKind.None);
                var f = ReferenceAttention.Forward(p, Rows(qd, Enumerable.Range(start, n).ToArray(), hq * k), Rows(kd, keyRows[s], hkv * k), Rows(vd, keyRows[s], hkv * k));
                Array.Copy(f.Output, 0, expectedO, start * hq * k, f.Output.Length);
                for (int h = 0; h < hq; h++)
                    Array.Copy(f.Lse, h * n, expectedLse, h * mq + start, n);
            }
            return Math.Max(
                ReferenceAttention.ScaledError(output.ToDoubleArray(), expectedO),
                ReferenceAttention.ScaledError(lse.ToDoubleArray(), expectedLse));
        }

        private static double[] Rows(double[] data, IReadOnlyList<int> rows, int width)
        {
            var result = new double[rows.Count * width];
            for (int r = 0; r < rows.Count; r++)
                Array.Copy(data, (long)rows[r] * width, result, (long)r * width, width);
            return result;
        }
    }
}
