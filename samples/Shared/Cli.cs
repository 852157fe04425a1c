using System;
using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.IO;
using System.Linq;

namespace XFormers.Samples;

/// <summary>
/// What the samples' command lines share (System.CommandLine): generated <c>--help</c>; a mistake on the command
/// line or in what it names (a missing file, a device that is not there) is one line on stderr that names the
/// flag, and a non-zero exit code; never a stack trace.
/// </summary>
internal static class Cli
{
    /// <summary>Exit code for a command line that does not parse.</summary>
    public const int UsageError = 2;

    /// <summary>Exit code for a run that stopped on an error.</summary>
    public const int RunError = 1;

    /// <summary>Parses <paramref name="args"/> and runs the chosen command's action; errors become one line on stderr.</summary>
    public static int Run(RootCommand root, string[] args)
    {
        string name = root.Name;
        var result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            Console.Error.WriteLine($"{name}: {OneLine(result.Errors[0].Message)} (see --help)");
            return UsageError;
        }
        try
        {
            return result.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Every failure the samples can meet is reported by message; XFORMERS_TRACE=1 shows the stack trace.
            string detail = e is ArgumentException or CheckpointException or IOException or UnauthorizedAccessException or InvalidOperationException or NotSupportedException
                or FormatException or System.Text.Json.JsonException or OperationCanceledException
                ? OneLine(e.Message) : $"{e.GetType().Name}: {OneLine(e.Message)}";
            Console.Error.WriteLine($"{name}: {detail}");
            if (Environment.GetEnvironmentVariable("XFORMERS_TRACE") == "1")
                Console.Error.WriteLine(e);
            return RunError;
        }
    }

    /// <summary>An integer option in [<paramref name="min"/>, <paramref name="max"/>]; a bad value is an error naming the flag.</summary>
    public static Option<int?> Int(string name, string description, int min = 0, int max = int.MaxValue)
    {
        var option = new Option<int?>(name) { Description = description, HelpName = "N" };
        option.CustomParser = result =>
        {
            if (result.Tokens.Count == 0)
                return null;
            string text = result.Tokens[0].Value;
            if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max)
                return value;
            result.AddError(max == int.MaxValue ? $"{name} {text}: expected a whole number, at least {min}." : $"{name} {text}: expected a whole number from {min} to {max}.");
            return null;
        };
        return option;
    }

    /// <summary>A number option; a bad value is an error naming the flag.</summary>
    public static Option<float?> Float(string name, string description)
    {
        var option = new Option<float?>(name) { Description = description, HelpName = "X" };
        option.CustomParser = result =>
        {
            if (result.Tokens.Count == 0)
                return null;
            string text = result.Tokens[0].Value;
            if (float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) && float.IsFinite(value))
                return value;
            result.AddError($"{name} {text}: expected a number.");
            return null;
        };
        return option;
    }

    /// <summary>An option whose value is one of <paramref name="allowed"/> (case-insensitive; stored in lower case).</summary>
    public static Option<string?> Choice(string name, string description, params string[] allowed)
    {
        var option = new Option<string?>(name) { Description = description, HelpName = string.Join("|", allowed) };
        option.CustomParser = result =>
        {
            if (result.Tokens.Count == 0)
                return null;
            string text = result.Tokens[0].Value;
            string lower = text.ToLowerInvariant();
            if (allowed.Contains(lower))
                return lower;
            result.AddError($"{name} {text}: use one of {string.Join(", ", allowed)}.");
            return null;
        };
        return option;
    }

    /// <summary>The accelerator named by <c>--device</c> (auto, cpu, cuda).</summary>
    public static AcceleratorPreference Device(string? value) => value switch
    {
        null or "auto" => AcceleratorPreference.Auto,
        "cpu" => AcceleratorPreference.Cpu,
        "cuda" => AcceleratorPreference.Cuda,
        _ => throw new ArgumentException($"--device {value}: use one of auto, cpu, cuda."),
    };

    /// <summary>The device option every sample takes.</summary>
    public static Option<string?> DeviceOption() =>
        Choice("--device", "accelerator: CUDA when present unless XFORMERS_DEVICE says otherwise; cuda fails when there is none", "auto", "cpu", "cuda");

    private static string OneLine(string text) => string.Join(" ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
