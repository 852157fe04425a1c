using System.Diagnostics;
using System.IO;
using SkiaSharp;
using XFormers.Samples.TinyGpt;

namespace XFormers.Tests.Training;

/// <summary>
/// The loss plot draws its text with the embedded font: the title and axis-label regions of the PNG hold dark pixels,
/// on this machine and in a trainer run whose fontconfig knows no font at all (as on the GPU machine).
/// </summary>
[Collection(DotnetCliCollection.Name)]
public sealed class LossPlotTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("xformers-plot-").FullName;

    [Fact]
    public void Embedded_font_loads_and_ScottPlot_resolves_its_name_to_it()
    {
        using var typeface = LossPlot.CreateTypeface();
        typeface.FamilyName.ShouldBe("DejaVu Sans");
        typeface.GlyphCount.ShouldBeGreaterThan(1000);
        LossPlot.Register();
        using var resolved = ScottPlot.Fonts.FontResolvers.Select(r => r.CreateTypeface(LossPlot.FontName, false, false)).First(t => t is not null);
        resolved!.FamilyName.ShouldBe("DejaVu Sans");
    }

    [Fact]
    public void Title_and_axis_labels_leave_ink_where_they_are_drawn()
    {
        var losses = Enumerable.Range(0, 100).Select(s => (s, (float)(4.0 * Math.Exp(-s / 20.0) + 0.01))).ToArray();
        string titled = Path.Combine(folder, "titled.png");
        LossPlot.Save(titled, losses, LossPlot.Title(12, 768, 124_439_808, "Float16", 301_234, "CUDA"));
        string untitled = Path.Combine(folder, "untitled.png");
        LossPlot.Save(untitled, losses, " ");

        Ink(titled, TitleRegion).ShouldBeGreaterThan(300, "the title is drawn");
        Ink(untitled, TitleRegion).ShouldBe(0, "a blank title leaves no text there (the check sees text, not the frame)");
        Ink(titled, YLabelRegion).ShouldBeGreaterThan(100, "the y-axis label is drawn");
        LossPlot.Title(12, 768, 124_439_808, "Float16", 301_234, "CUDA").ShouldBe("TinyGPT 124.4M parameters (12 layers, d 768), Float16, 301,234 tokens/s on CUDA");
    }

    /// <summary>
    /// SkiaSharp's Linux build (no fontconfig) finds fonts by scanning /usr/share/fonts; the run hides that folder behind
    /// an empty one in a private mount namespace (root, unshare -m), as a machine without fonts has it. Where that is not
    /// allowed the run keeps the system fonts and the test says so.
    /// </summary>
    [Fact]
    public void A_trainer_run_without_any_system_font_still_draws_its_text()
    {
        string empty = Directory.CreateDirectory(Path.Combine(folder, "no-fonts")).FullName;
        string dll = Path.Combine(ConsumerProjectTests.RepositoryRoot(), "samples", "XFormers.TinyGpt", "bin", ConsumerProjectTests.Configuration, "net10.0", "XFormers.TinyGpt.dll");
        string run = $"dotnet '{dll}' --steps 4 --layers 1 --d 16 --heads 1 --seq 8 --batch 2 --plain --out '{folder}'";
        bool hidden = Shell($"unshare -m mount --bind '{empty}' /usr/share/fonts", out _) == 0;
        if (!hidden)
            Console.WriteLine("LossPlotTests: unshare -m is not allowed here; the trainer runs with the system's fonts visible.");
        string command = hidden ? $"unshare -m sh -c \"mount --bind '{empty}' /usr/share/fonts && exec {run.Replace("\"", "\\\"", StringComparison.Ordinal)}\"" : run;
        int exit = Shell(command, out string output);
        exit.ShouldBe(0, output);
        string png = Path.Combine(folder, "tinygpt-loss.png");
        output.ShouldContain("loss curve: " + png);
        Ink(png, TitleRegion).ShouldBeGreaterThan(300, "the title is drawn without system fonts");
        Ink(png, YLabelRegion).ShouldBeGreaterThan(100, "the y-axis label is drawn without system fonts");
    }

    private static int Shell(string command, out string output)
    {
        var info = new ProcessStartInfo("sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(command + " 2>&1");
        info.Environment["XFORMERS_DEVICE"] = "cpu";
        info.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(info)!;
        output = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{command} ran past 2 minutes.");
        }
        return process.ExitCode;
    }

    private static readonly (double Left, double Top, double Right, double Bottom) TitleRegion = (0.1, 0.0, 0.9, 0.06);
    private static readonly (double Left, double Top, double Right, double Bottom) YLabelRegion = (0.0, 0.2, 0.025, 0.8);

    /// <summary>
    /// Pixels darker than mid-grey inside a region given as fractions of the picture, leaving out rows inked over more
    /// than half their width (the frame's lines): what is left is text.
    /// </summary>
    private static int Ink(string png, (double Left, double Top, double Right, double Bottom) region)
    {
        using var bitmap = SKBitmap.Decode(png);
        int left = (int)(region.Left * bitmap.Width), right = (int)(region.Right * bitmap.Width);
        int count = 0;
        for (int y = (int)(region.Top * bitmap.Height); y < (int)(region.Bottom * bitmap.Height); y++)
        {
            int row = 0;
            for (int x = left; x < right; x++)
            {
                var c = bitmap.GetPixel(x, y);
                if (c.Red + c.Green + c.Blue < 3 * 128)
                    row++;
            }
            if (row <= (right - left) / 2)
                count += row;
        }
        return count;
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);
}
