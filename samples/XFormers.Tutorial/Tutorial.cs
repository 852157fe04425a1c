using System;
using System.Diagnostics;
using System.Linq;
using Spectre.Console;
using XFormers.Dsl;
using XFormers.Reference;
using XFormers.Samples;
using Half = ILGPU.Half;

namespace XFormers.Tutorial;

/// <summary>
/// The sections of the xFormers tutorial, in order. On the GPU they run at the tutorial's sizes; on the CPU
/// some sizes shrink so that everything finishes in minutes, and each section says what it changed.
/// </summary>
public sealed partial class Tutorial(XFormersContext context, IAnsiConsole console)
{
    private bool OnCpu => context.IsCpu;

    public void RunAll()
    {
        for (int section = 1; section <= SectionCount; section++)
            Run(section);
    }

    public void Run(int section)
    {
        var watch = Stopwatch.StartNew();
        switch (section)
        {
            case 1: Setup(); break;
            case 2: MemoryAndSpeed(); break;
            case 3: Causal(); break;
            case 4: Packed(); break;
            case 5: GroupedQuery(); break;
            case 6: CustomAlibi(); break;
            case 7: Training(); break;
            case 8: KvCacheDecoding(); break;
            case 9: Mods(); break;
            default: throw new ArgumentOutOfRangeException(nameof(section), $"sections are 1..{SectionCount}");
        }
        console.MarkupLine($"[grey]section {section}: {watch.Elapsed.TotalSeconds:F1} s[/]");
        console.WriteLine();
    }

    public const int SectionCount = 9;

    private void Heading(int number, string title) => console.Write(new Rule($"[yellow]{number}. {Markup.Escape(title)}[/]").LeftJustified());

    /// <summary>Compiles the kernels a section is about to launch, saying so first.</summary>
    private void Compile(bool backward, params AttentionKernel[] kernels) => KernelCompilation.Prepare(console, context, backward, kernels);

    private void Reduced(string what) => console.MarkupLine($"[grey]CPU: {Markup.Escape(what)}[/]");

    /// <summary>The `info` command: like `python -m xformers.info`.</summary>
    public void Info()
    {
        var info = XFormersInfo.Collect(context);
        console.MarkupLine($"[bold]XFormers for .NET[/] {info.Version}  ILGPU {info.IlgpuVersion}  .NET {info.DotNetVersion}");
        console.MarkupLine($"accelerator: [green]{Markup.Escape(info.Accelerator)}[/]");
        if (!KernelCompilation.IsLive(console))
        {
            // Redirected to a file or a pipe: plain lines that stay readable at 80 columns, no tables to wrap.
            foreach (var d in info.Devices)
                console.WriteLine($"device: {d.Backend} {d.Name}, {(d.MemoryBytes > 0 ? $"{d.MemoryBytes / (1024 * 1024)} MiB" : "host memory")}, {d.Multiprocessors} SMs, {d.MaxGroupSize} threads/group");
            foreach (var note in info.BackendNotes)
                console.WriteLine(note);
            foreach (var v in info.Variants)
            {
                var x = v.Variant;
                console.WriteLine($"{x.Name.Split('.').Last()} ({v.Assembly})");
                console.WriteLine($"    {x.Mask} + {x.Bias}{(x.BiasGradient ? " (+grad)" : "")}, {x.DType}, K{x.HeadDim}, " +
                    $"{(x.Heads > 0 ? $"{x.Heads}/{(x.KvHeads > 0 ? x.KvHeads : x.Heads)} heads" : "any heads")}, tiles {x.BlockM}x{x.BlockN}" +
                    $"{(x.Backward ? ", backward" : "")}{(v.CanRun ? "" : ", cannot run here")}");
            }
            console.WriteLine($"{info.Variants.Count} variants registered.");
            return;
        }
        var devices = new Table().AddColumns("backend", "device", "memory", "multiprocessors", "threads/group");
        foreach (var d in info.Devices)
            devices.AddRow(d.Backend, Markup.Escape(d.Name), d.MemoryBytes > 0 ? $"{d.MemoryBytes / (1024 * 1024)} MiB" : "host", d.Multiprocessors.ToString(), d.MaxGroupSize.ToString());
        console.Write(devices);
        foreach (var note in info.BackendNotes)
            console.MarkupLine($"[grey]{Markup.Escape(note)}[/]");
        var variants = new Table().AddColumns("variant", "assembly", "mask", "bias", "dtype", "K", "heads", "tiles", "backward", "runs here");
        foreach (var v in info.Variants)
        {
            var x = v.Variant;
            variants.AddRow(
                Markup.Escape(x.Name.Split('.').Last()), Markup.Escape(v.Assembly), x.Mask.ToString(), x.Bias + (x.BiasGradient ? " (+grad)" : ""),
                x.DType.ToString(), x.HeadDim.ToString(), x.Heads > 0 ? $"{x.Heads}/{(x.KvHeads > 0 ? x.KvHeads : x.Heads)}" : "any",
                $"{x.BlockM}×{x.BlockN}", x.Backward ? "yes" : "no", v.CanRun ? "[green]yes[/]" : "[red]no[/]");
        }
        console.Write(variants);
        console.MarkupLine($"{info.Variants.Count} variants registered.");
    }

    // 1. Setup: versions, the accelerator, the kernels; memory-efficient attention against the naive reference.
    private void Setup()
    {
        Heading(1, "Setup");
        var info = XFormersInfo.Collect(context);
        console.WriteLine($"XFormers for .NET {info.Version}, ILGPU {info.IlgpuVersion}, .NET {info.DotNetVersion}");
        console.MarkupLine($"accelerator: [green]{Markup.Escape(info.Accelerator)}[/]");
        var byKind = info.Variants
            .GroupBy(v => $"{v.Variant.DType}")
            .Select(g => $"{g.Key}: {g.Count()} variants, head dims {string.Join("/", g.Select(v => v.Variant.HeadDim).Distinct().OrderBy(d => d))}");
        console.WriteLine($"kernels: {info.Variants.Count} registered ({string.Join("; ", byKind)}); `info` lists each one");

        int b = 2, m = 512, h = 8, k = 64;
        using var q = Tensor<Half>.RandomNormal(context, 1, 1f, b, m, h, k);
        using var kk = Tensor<Half>.RandomNormal(context, 2, 1f, b, m, h, k);
        using var v2 = Tensor<Half>.RandomNormal(context, 3, 1f, b, m, h, k);
        Compile(backward: false, Fmha.SelectKernel(q, kk, v2));
        using var output = Fmha.MemoryEfficientAttention(q, kk, v2);
        double diff = MaxAbsDiff(output.ToDoubleArray(), Reference(q, kk, v2, null).Output);
        console.WriteLine($"memory_efficient_attention: output shape {output.ShapeString} (BMHK), max abs diff vs reference {diff:E2}");
    }

    // 3. Causal attention through LowerTriangularMask.
    private void Causal()
    {
        Heading(3, "Causal attention (LowerTriangularMask)");
        int b = 2, m = 512, h = 8, k = 64;
        using var q = Tensor<Half>.RandomNormal(context, 4, 1f, b, m, h, k);
        using var kk = Tensor<Half>.RandomNormal(context, 5, 1f, b, m, h, k);
        using var v = Tensor<Half>.RandomNormal(context, 6, 1f, b, m, h, k);
        var mask = new LowerTriangularMask();
        Compile(backward: false, Fmha.SelectKernel(q, kk, v, mask));
        using var output = Fmha.MemoryEfficientAttention(q, kk, v, mask);
        double diff = MaxAbsDiff(output.ToDoubleArray(), Reference(q, kk, v, mask).Output);
        console.WriteLine($"causal output {output.ShapeString}, max abs diff vs the masked reference {diff:E2}");
    }

    // 4. Variable-length sequences packed with BlockDiagonalMask.
    private void Packed()
    {
        Heading(4, "Packed variable-length sequences (BlockDiagonalMask)");
        int[] seqlens = { 37, 120, 8, 200 };
        int h = 8, k = 64;
        var mask = BlockDiagonalMask.FromSeqlens(seqlens);
        int total = mask.TotalQ;
        using var q = Tensor<Half>.RandomNormal(context, 7, 1f, 1, total, h, k);
        using var kk = Tensor<Half>.RandomNormal(context, 8, 1f, 1, total, h, k);
        using var v = Tensor<Half>.RandomNormal(context, 9, 1f, 1, total, h, k);
        Compile(backward: false, Fmha.SelectKernel(q, kk, v, mask), Fmha.SelectKernel(q, kk, v, mask.MakeCausal()), Fmha.SelectKernel(mask.Split(q)[0], mask.SplitKv(kk)[0], mask.SplitKv(v)[0]));
        using var packed = Fmha.MemoryEfficientAttention(q, kk, v, mask);
        console.WriteLine($"seqlens [{string.Join(", ", seqlens)}] packed into {q.ShapeString}; output {packed.ShapeString}");

        // Segment 0 alone, as its own batch-1 problem, must equal the packed result's first rows.
        var q0 = mask.Split(q)[0];
        var k0 = mask.SplitKv(kk)[0];
        var v0 = mask.SplitKv(v)[0];
        using var alone = Fmha.MemoryEfficientAttention(q0, k0, v0);
        double diff = MaxAbsDiff(mask.Split(packed)[0].ToDoubleArray(), alone.ToDoubleArray());
        console.WriteLine($"segment 0 packed vs alone: max abs diff {diff:E2}");

        using var causal = Fmha.MemoryEfficientAttention(q, kk, v, mask.MakeCausal());
        double causalDiff = MaxAbsDiff(causal.ToDoubleArray(), Reference(q, kk, v, mask.MakeCausal()).Output);
        console.WriteLine($"packed causal pass (BlockDiagonalCausalMask): output {causal.ShapeString}, max abs diff vs reference {causalDiff:E2}");
        console.WriteLine($"Split recovers: {string.Join(", ", mask.Split(causal).Select(t => t.ShapeString))}");
    }

    // 5. Grouped-query attention in the 5-D BMGHK layout.
    private void GroupedQuery()
    {
        Heading(5, "Grouped-query attention (BMGHK)");
        int b = 2, m = 512, g = 2, hPerGroup = 4, k = 64;
        using var q = Tensor<Half>.RandomNormal(context, 10, 1f, b, m, g, hPerGroup, k);
        using var kk = Tensor<Half>.RandomNormal(context, 11, 1f, b, m, g, 1, k);
        using var v = Tensor<Half>.RandomNormal(context, 12, 1f, b, m, g, 1, k);
        Compile(backward: false, Fmha.SelectKernel(q, kk, v));
        using var output = Fmha.MemoryEfficientAttention(q, kk, v);
        double diff = MaxAbsDiff(output.ToDoubleArray(), Reference(q, kk, v, null).Output);
        console.WriteLine($"8 query heads over 2 KV heads: q {q.ShapeString}, k/v {kk.ShapeString} → output {output.ShapeString}; max abs diff vs reference {diff:E2}");
    }

    // 6. A custom ALiBi bias tensor plus a causal −inf mask, against the in-kernel ALiBi variant.
    private void CustomAlibi()
    {
        Heading(6, "Custom ALiBi bias tensor vs in-kernel ALiBi");
        int b = 2, m = 512, h = 8, k = 64;
        var slopes = AlibiBias.DefaultSlopes(h);
        var values = new float[h * m * m];
        for (int head = 0; head < h; head++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < m; j++)
                    values[((long)head * m + i) * m + j] = j <= i ? slopes[head] * (j - i) : float.NegativeInfinity;
        using var bias = Tensor<Half>.FromFloats(context, values, 1, h, m, m);
        using var q = Tensor<Half>.RandomNormal(context, 13, 1f, b, m, h, k);
        using var kk = Tensor<Half>.RandomNormal(context, 14, 1f, b, m, h, k);
        using var v = Tensor<Half>.RandomNormal(context, 15, 1f, b, m, h, k);
        Compile(backward: false, Fmha.SelectKernel(q, kk, v, new TensorBias<Half>(bias)), Fmha.SelectKernel(q, kk, v, new LowerTriangularMask().WithAlibi(slopes)));
        using var withTensor = Fmha.MemoryEfficientAttention(q, kk, v, new TensorBias<Half>(bias));
        using var inKernel = Fmha.MemoryEfficientAttention(q, kk, v, new LowerTriangularMask().WithAlibi(slopes));
        console.WriteLine($"bias tensor {bias.ShapeString} (slope·(j−i), −inf above the diagonal) → output {withTensor.ShapeString}");
        console.WriteLine($"in-kernel ALiBi + LowerTriangularMask (no M×M tensor): max abs diff {MaxAbsDiff(withTensor.ToDoubleArray(), inKernel.ToDoubleArray()):E2}");
    }

    private static ReferenceAttention.ForwardResult Reference<T>(Tensor<T> q, Tensor<T> k, Tensor<T> v, AttentionBias? bias)
        where T : unmanaged =>
        ReferenceAttention.Forward(ReferenceAttention.ProblemFor(q, k, bias), q.ToDoubleArray(), k.ToDoubleArray(), v.ToDoubleArray());

    private static double MaxAbsDiff(double[] a, double[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).DefaultIfEmpty(0).Max();
}
