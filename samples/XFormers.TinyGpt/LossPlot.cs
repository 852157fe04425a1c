using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using ScottPlot;
using SkiaSharp;

namespace XFormers.Samples.TinyGpt;

/// <summary>
/// The loss curve as a PNG: loss on a log axis against the step, titled with the model's size and the measured tokens/s.
/// Text is drawn with DejaVu Sans embedded in this assembly (Fonts/DejaVuSans.ttf, Bitstream Vera licence beside it),
/// registered with ScottPlot under <see cref="FontName"/>, a name no system font has: the labels render the same on a
/// machine without fontconfig or any installed font (the GPU machine's single-file publish), where Skia's default
/// typeface draws nothing.
/// </summary>
internal static class LossPlot
{
    public const string FontName = "XFormers Embedded Sans";
    public const string FontResource = "XFormers.TinyGpt.DejaVuSans.ttf";

    private static readonly Lazy<byte[]> FontBytes = new(() =>
    {
        using var stream = typeof(LossPlot).Assembly.GetManifestResourceStream(FontResource)
            ?? throw new InvalidOperationException($"the font resource {FontResource} is missing from {typeof(LossPlot).Assembly.GetName().Name}.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    private static readonly object Gate = new();
    private static bool registered;

    /// <summary>A new typeface of the embedded font (the caller owns it).</summary>
    public static SKTypeface CreateTypeface()
    {
        using var data = SKData.CreateCopy(FontBytes.Value);
        return SKTypeface.FromData(data) ?? throw new InvalidOperationException($"Skia could not read the embedded font {FontResource}.");
    }

    /// <summary>Adds the embedded font to ScottPlot's resolvers (once per process).</summary>
    public static void Register()
    {
        lock (Gate)
        {
            if (registered)
                return;
            Fonts.FontResolvers.Add(new EmbeddedFontResolver());
            registered = true;
        }
    }

    /// <summary>"TinyGPT 124.4M parameters (12 layers, d 768), Float16, 401,234 tokens/s on CUDA".</summary>
    public static string Title(int layers, int dim, long parameters, string dtype, double tokensPerSecond, string device)
    {
        string size = parameters >= 1_000_000 ? $"{parameters / 1e6:F1}M" : $"{parameters / 1e3:F1}k";
        return string.Create(CultureInfo.InvariantCulture, $"TinyGPT {size} parameters ({layers} layer{(layers == 1 ? "" : "s")}, d {dim}), {dtype}, {tokensPerSecond:N0} tokens/s on {device}");
    }

    /// <summary>Draws <paramref name="losses"/> (step, loss) and saves a PNG of <paramref name="width"/> × <paramref name="height"/>.</summary>
    public static void Save(string path, IReadOnlyList<(int Step, float Loss)> losses, string title, int width = 900, int height = 540)
    {
        ArgumentNullException.ThrowIfNull(losses);
        Register();
        var plot = new Plot();
        // A log axis as ScottPlot 5 draws one: log10 of the values, ticks labelled with the values.
        var finite = losses.Where(p => float.IsFinite(p.Loss) && p.Loss > 0f).ToArray();
        var line = plot.Add.Scatter(finite.Select(p => (double)p.Step).ToArray(), finite.Select(p => Math.Log10(p.Loss)).ToArray());
        line.MarkerSize = 0;
        line.LineWidth = 1.5f;
        if (finite.Length > 0)
            plot.Axes.Left.TickGenerator = LogTicks(finite.Min(p => p.Loss), finite.Max(p => p.Loss));
        plot.Title(title, size: 15);
        plot.XLabel("step");
        plot.YLabel("cross-entropy loss (log scale)");
        plot.Font.Set(FontName);
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null)
            Directory.CreateDirectory(folder);
        plot.SavePng(path, width, height);
    }

    /// <summary>
    /// Major ticks at 1, 2, 5 × 10^k (every integer multiple when the range spans about one decade), minor ticks at the
    /// other multiples; a range too narrow to hold two of those gets ScottPlot's automatic ticks, labelled with 10^y.
    /// </summary>
    private static ITickGenerator LogTicks(float min, float max)
    {
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        int low = (int)Math.Floor(Math.Log10(min)), high = (int)Math.Ceiling(Math.Log10(max));
        bool narrow = high - low <= 1;
        int inside = 0;
        for (int k = low; k <= high; k++)
        {
            for (int m = 1; m <= 9; m++)
            {
                double value = m * Math.Pow(10, k);
                if (narrow || m is 1 or 2 or 5)
                {
                    ticks.AddMajor(Math.Log10(value), Label(value));
                    inside += value >= min && value <= max ? 1 : 0;
                }
                else
                {
                    ticks.AddMinor(Math.Log10(value));
                }
            }
        }
        if (inside >= 2)
            return ticks;
        // Ticks even in log10(loss) are uneven in loss: enough significant digits to tell neighbours apart.
        int digits = Math.Clamp(3 + (int)Math.Ceiling(-Math.Log10(Math.Max((max - min) / max, 1e-7))), 3, 9);
        string format = "G" + digits.ToString(CultureInfo.InvariantCulture);
        return new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = y => Label(Math.Pow(10, y), format) };
    }

    private static string Label(double value, string format = "G3") => value.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>Hands ScottPlot the embedded typeface for <see cref="FontName"/>, any weight and slant (one face is embedded).</summary>
    private sealed class EmbeddedFontResolver : IFontResolver
    {
        public SKTypeface? CreateTypeface(string fontName, bool bold, bool italic) => fontName == FontName ? LossPlot.CreateTypeface() : null;

        public SKTypeface? CreateTypeface(string fontName, FontWeight weight, FontSlant slant, FontSpacing spacing) =>
            fontName == FontName ? LossPlot.CreateTypeface() : null;
    }
}
