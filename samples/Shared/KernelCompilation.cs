using System;
using System.Diagnostics;
using System.Linq;
using Spectre.Console;

namespace XFormers.Samples;

/// <summary>
/// Compiles the attention kernels a step is about to launch, and says so first: ILGPU compiles each kernel on its
/// first launch (seconds per kernel on the CPU), which otherwise looks like a hang.
/// </summary>
internal static class KernelCompilation
{
    /// <summary>Prints "Compiling N kernels for &lt;device&gt;…", compiles them (with a live bar on a terminal) and says how long it took.</summary>
    public static void Prepare(IAnsiConsole console, XFormersContext context, bool includeBackward, params AttentionKernel[] kernels)
    {
        var accelerator = context.Accelerator;
        var pending = kernels.Distinct().Select(k => (Kernel: k, Count: k.UncompiledKernels(accelerator, includeBackward))).Where(p => p.Count > 0).ToArray();
        int total = pending.Sum(p => p.Count);
        if (total == 0)
            return;
        console.MarkupLine($"[grey]Compiling {total} kernel{(total == 1 ? "" : "s")} for {Markup.Escape(context.IsCuda ? context.Accelerator.Name : "the CPU")}…[/]");
        var watch = Stopwatch.StartNew();
        if (IsLive(console))
        {
            console.Progress()
                .AutoClear(true)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new ElapsedTimeColumn())
                .Start(progress =>
                {
                    var task = progress.AddTask("compiling", maxValue: total);
                    foreach (var (kernel, count) in pending)
                    {
                        task.Description = Markup.Escape(kernel.Variant.Name.Split('.').Last());
                        kernel.Prepare(accelerator, includeBackward);
                        task.Increment(count);
                    }
                });
        }
        else
        {
            foreach (var (kernel, _) in pending)
                kernel.Prepare(accelerator, includeBackward);
        }
        console.MarkupLine($"[grey]compiled in {watch.Elapsed.TotalSeconds:F1} s[/]");
    }

    /// <summary>Whether live bars can be drawn: a terminal that takes ANSI codes, not a file or a pipe.</summary>
    public static bool IsLive(IAnsiConsole console) =>
        !Console.IsOutputRedirected && console.Profile.Capabilities.Ansi && console.Profile.Capabilities.Interactive;
}
