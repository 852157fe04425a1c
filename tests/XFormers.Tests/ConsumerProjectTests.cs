using System.Diagnostics;
using System.IO;

namespace XFormers.Tests;

/// <summary>
/// Builds and runs tests/XFormers.ConsumerCheck, a console project outside the solution that references the
/// three projects like an application, declares a variant of each mask × bias kind plus grouped-query ones,
/// and checks outputs and gradients against the fp64 reference.
/// </summary>
[Collection(DotnetCliCollection.Name)]
public class ConsumerProjectTests
{
    [Fact]
    public void ConsumerProjectDeclaresRunsAndMatchesTheReference()
    {
        var project = Path.Combine(RepositoryRoot(), "tests", "XFormers.ConsumerCheck");
        var (exitCode, output) = Dotnet(project, "run", "--project", project, "-c", Configuration);
        exitCode.ShouldBe(0, output);
        output.ShouldContain("all variants match the reference");
        // 15 mask × bias kinds, a local mask with ALiBi, and two grouped-query variants.
        output.Split('\n').Count(line => line.StartsWith("ok ", StringComparison.Ordinal)).ShouldBe(18, output);
    }

#if DEBUG
    internal const string Configuration = "Debug";
#else
    internal const string Configuration = "Release";
#endif

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "XFormers.slnx")))
                return dir.FullName;
        }
        throw new InvalidOperationException("The repository root (XFormers.slnx) was not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Runs the dotnet CLI with no lingering build servers; returns the exit code and all output.</summary>
    internal static (int ExitCode, string Output) Dotnet(string workingDirectory, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_DO_NOT_USE_MSBUILD_SERVER"] = "1";
        start.Environment["UseSharedCompilation"] = "false";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["XFORMERS_DEVICE"] = "cpu";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet {string.Join(' ', arguments)} ran past 10 minutes.");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
