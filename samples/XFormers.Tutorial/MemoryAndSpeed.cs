using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Spectre.Console;
using XFormers.Reference;
using Half = ILGPU.Half;

namespace XFormers.Tutorial;

public sealed partial class Tutorial
{
    // 2. Memory and speed against naive attention, forward + backward: the naive path materializes the
    //    [B, H, M, M] score and probability matrices; the generated kernels never do.
    private void MemoryAndSpeed()
    {
        Heading(2, "Memory and speed vs naive attention (forward + backward)");
        int b = 2, h = 8, k = 64;
        int[] sizes = OnCpu ? new[] { 64, 128, 256 } : new[] { 512, 1024, 2048, 4096 };
        if (OnCpu)
            Reduced("M = 64, 128, 256 instead of 512 … 4096, one timed call each (ILGPU's CPU accelerator runs the kernels slowly)");
        var table = new Table().AddColumns("M", "naive MB", "generated MB", "naive ms", "generated ms");
        foreach (int m in sizes)
        {
            using var q = Tensor<Half>.RandomNormal(context, 21, 1f, b, m, h, k);
            using var kk = Tensor<Half>.RandomNormal(context, 22, 1f, b, m, h, k);
            using var v = Tensor<Half>.RandomNormal(context, 23, 1f, b, m, h, k);
            using var dO = Tensor<Half>.RandomNormal(context, 24, 1f, b, m, h, k);
            bool warm = m == sizes[0] || !OnCpu;
            Compile(backward: true, Fmha.SelectKernel(q, kk, v, needBackward: true));
            var generated = Measure(warm, () =>
            {
                using var forward = Fmha.MemoryEfficientAttentionForward(q, kk, v);
                using var grads = Fmha.MemoryEfficientAttentionBackward(dO, forward, q, kk, v);
            });
            // The naive backward recomputes S and P and O itself: one call is the whole forward + backward.
            var naive = Measure(warm, () =>
            {
                using var grads = NaiveAttention.Backward(dO, q, kk, v);
            });
            table.AddRow(m.ToString(), naive.Text(r => $"{r.Megabytes:F0}"), generated.Text(r => $"{r.Megabytes:F0}"),
                naive.Text(r => $"{r.Milliseconds:F1}"), generated.Text(r => $"{r.Milliseconds:F1}"));
        }
        console.Write(table);
        console.MarkupLine($"[grey]MB: the most bytes this library's tensors held during the call (inputs excluded); ms: {(OnCpu ? "one timed call" : "median of 3 timed calls after a warm-up")}, synchronized.[/]");
    }

    private sealed record Measurement(double Milliseconds, double Megabytes, string? Failure)
    {
        public string Text(Func<Measurement, string> format) => Failure is null ? format(this) : Failure;
    }

    /// <summary>A warm-up call (compiles the kernels), then 3 synchronized timed calls (1 on the CPU); peak bytes over those held before.</summary>
    private Measurement Measure(bool warmUp, Action call)
    {
        try
        {
            if (warmUp)
                call();
            context.Synchronize();
            long before = context.LiveBytes;
            context.ResetPeakBytes();
            var times = new List<double>();
            for (int run = 0; run < (OnCpu ? 1 : 3); run++)
            {
                var watch = Stopwatch.StartNew();
                call();
                context.Synchronize();
                times.Add(watch.Elapsed.TotalMilliseconds);
            }
            return new Measurement(times.OrderBy(t => t).ElementAt(times.Count / 2), (context.PeakBytes - before) / 1e6, null);
        }
        catch (Exception e) when (e is OutOfMemoryException || e.Message.Contains("memory", StringComparison.OrdinalIgnoreCase))
        {
            // The seed's try/except: a size the naive path cannot hold prints n/a.
            return new Measurement(0, 0, "n/a (out of memory)");
        }
    }
}
