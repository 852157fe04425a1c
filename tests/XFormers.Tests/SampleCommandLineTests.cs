using System.Diagnostics;
using System.IO;
using System.Threading.Tasks;
using XFormers.Training;

namespace XFormers.Tests;

/// <summary>
/// The samples' command lines, run as a user runs them (their built DLLs, on the CPU): a bad flag is one line on
/// stderr naming the flag, with a non-zero exit code and no stack trace; the tutorial says it is compiling kernels
/// within seconds of starting; Ctrl+C stops the trainer after a step with a checkpoint written.
/// </summary>
[Collection(DotnetCliCollection.Name)]
public class SampleCommandLineTests
{
    public static TheoryData<string, string, string> BadFlags() => new()
    {
        { "XFormers.Tutorial", "--section 10", "--section 10" },
        { "XFormers.Tutorial", "--section abc", "--section abc" },
        { "XFormers.Tutorial", "--device gpu0", "--device gpu0: use one of auto, cpu, cuda" },
        { "XFormers.Tutorial", "info --device gpu0", "--device gpu0" },
        { "XFormers.Tutorial", "--sections 2", "'--sections'" },
        { "XFormers.TinyGpt", "--steps abc", "--steps abc" },
        { "XFormers.TinyGpt", "--device gpu0", "--device gpu0: use one of auto, cpu, cuda" },
        { "XFormers.TinyGpt", "--dtype fp8", "--dtype fp8: use one of fp16, bf16, fp32" },
        { "XFormers.TinyGpt", "--save-every 0", "--save-every 0" },
        { "XFormers.TinyGpt", "--lr fast", "--lr fast" },
        { "XFormers.TinyGpt", "--generate 0", "--generate 0" },
        { "XFormers.Bench", "conformance --shard 3", "--shard 3: use i/n" },
        { "XFormers.Bench", "bench --only", "'--only'" },
        { "XFormers.Bench", "benchmark", "'benchmark'" },
    };

    [Theory]
    [MemberData(nameof(BadFlags))]
    public void A_bad_flag_is_one_line_naming_it(string sample, string arguments, string expected)
    {
        var run = Run(sample, arguments.Split(' '));
        run.ExitCode.ShouldBe(2, run.ToString());
        run.Stdout.ShouldBeEmpty(run.ToString());
        var line = SingleLine(run.Stderr);
        line.ShouldContain(expected, Case.Sensitive, run.ToString());
        line.ShouldStartWith(sample + ": ");
    }

    [Fact]
    public void A_missing_file_is_one_line_and_exit_code_1()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"no-such-checkpoint-{Environment.ProcessId}.safetensors");
        var run = Run("XFormers.TinyGpt", "--resume", missing);
        run.ExitCode.ShouldBe(1, run.ToString());
        SingleLine(run.Stderr).ShouldContain(missing);
        run.Stderr.ShouldNotContain(" at ");
    }

    [Fact]
    public void Help_is_generated_and_lists_every_trainer_flag()
    {
        var run = Run("XFormers.TinyGpt", "--help");
        run.ExitCode.ShouldBe(0, run.ToString());
        foreach (var flag in new[] { "--data", "--steps", "--save-every", "--out", "--checkpoint", "--resume", "--plot", "--bench", "--profile", "--gemm", "--print-every", "--plain", "--device", "--generate", "--prompt", "--temperature", "--top-k" })
            run.Stdout.ShouldContain(flag);
    }

    [Fact]
    public void Info_redirected_is_plain_lines_of_at_most_80_columns()
    {
        var run = Run("XFormers.Tutorial", "info");
        run.ExitCode.ShouldBe(0, run.ToString());
        var lines = run.Stdout.TrimEnd('\n').Split('\n');
        lines.ShouldAllBe(line => line.Length <= 80);
        lines.ShouldNotContain(line => line.Contains('┌') || line.Contains('│'), "no table borders");
        // Each variant: its name and assembly, then one indented line of facts.
        int at = Array.IndexOf(lines, "CausalHead16 (XFormers.Tutorial)");
        at.ShouldBeGreaterThan(0, run.Stdout);
        lines[at + 1].ShouldBe("    Causal + None, Float16, K16, any heads, tiles 64x64, backward");
        int registered = AttentionRegistry.Variants.Count(v => v.Variant.Name.StartsWith("XFormers.StockVariants.", StringComparison.Ordinal));
        lines.Count(line => line.EndsWith("(XFormers.Runtime)", StringComparison.Ordinal)).ShouldBe(registered);
    }

    [Fact]
    public void The_tutorial_says_it_compiles_kernels_within_five_seconds()
    {
        var start = Start("XFormers.Tutorial", new[] { "--section", "1" });
        using var process = start.Process;
        try
        {
            var clock = Stopwatch.StartNew();
            var lines = new List<string>();
            while (clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                string? line = process.StandardOutput.ReadLine();
                if (line is null)
                    break;
                lines.Add(line);
                if (line.StartsWith("Compiling ", StringComparison.Ordinal))
                    break;
            }
            lines.ShouldNotBeEmpty();
            lines[0].ShouldContain("Setup");
            lines[^1].ShouldStartWith("Compiling 1 kernel for the CPU", Case.Sensitive, string.Join('\n', lines));
            clock.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(5), string.Join('\n', lines));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
        }
    }

    /// <summary>
    /// SIGINT (Ctrl+C) and SIGTERM each stop the trainer after its step with a checkpoint that resumes, and exit with 128 +
    /// the signal. A process started with SIGINT ignored keeps it ignored (.NET respects inherited ignored signals), and a
    /// test host run as a background job of a script has it ignored, as would its children: there the trainer is started
    /// through <c>env --default-signal=INT</c>.
    /// </summary>
    [Theory]
    [InlineData("INT", 130, "Ctrl+C")]
    [InlineData("TERM", 143, "SIGTERM")]
    public async Task A_signal_stops_the_trainer_after_a_step_and_writes_a_checkpoint_that_resumes(string signal, int exitCode, string name)
    {
        string dir = Directory.CreateTempSubdirectory("xformers-interrupt-").FullName;
        try
        {
            string checkpoint = Path.Combine(dir, "tinygpt.safetensors");
            string[] model = { "--layers", "1", "--d", "16", "--heads", "1", "--seq", "8", "--batch", "2", "--vocab", "11", "--dtype", "fp32", "--plain", "--print-every", "1" };
            var start = Start("XFormers.TinyGpt", model.Concat(new[] { "--steps", "100000", "--out", dir }).ToArray(), defaultSigint: signal == "INT" && SigintIgnoredHere());
            using var process = start.Process;
            string? line;
            while ((line = process.StandardOutput.ReadLine()) is not null && !line.StartsWith("step ", StringComparison.Ordinal))
            {
            }
            line.ShouldNotBeNull("the trainer ended before its first step");
            Process.Start("kill", new[] { "-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) })!.WaitForExit();
            // Bounded: a trainer that does not stop fails here within a minute instead of holding the suite.
            var restTask = process.StandardOutput.ReadToEndAsync();
            bool stopped = process.WaitForExit(60_000);
            string dispositions = "";
            if (!stopped)
            {
                dispositions = $"trainer: {SignalMasks($"/proc/{process.Id}/status")}; test host: {SignalMasks("/proc/self/status")}";
                process.Kill(entireProcessTree: true);
            }
            string rest = await restTask;
            stopped.ShouldBeTrue($"the trainer was still running a minute after SIG{signal} ({dispositions})");
            string stderr = await start.Stderr;
            process.ExitCode.ShouldBe(exitCode, rest + stderr);
            stderr.ShouldContain($"interrupted ({name}): stopping after this step");
            rest.ShouldContain("continue with --resume");

            var (_, metadata) = SafeTensors.Load(checkpoint);
            int step = int.Parse(metadata["step"], System.Globalization.CultureInfo.InvariantCulture);
            step.ShouldBeInRange(1, 99_999);
            // The checkpoint resumes: two more steps from where the signal stopped it.
            var resumed = Run("XFormers.TinyGpt", new[] { "--resume", checkpoint, "--steps", (step + 2).ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", dir, "--plain", "--sample", "0" });
            resumed.ExitCode.ShouldBe(0, resumed.ToString());
            resumed.Stdout.ShouldContain($"resumed {checkpoint} at step {step}");
            resumed.Stdout.ShouldContain($"(step {step + 2})");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Whether this process ignores SIGINT (bit 1 of SigIgn in /proc/self/status), as its children then do.</summary>
    private static bool SigintIgnoredHere() =>
        File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal)) is string ignored
        && (ulong.Parse(ignored["SigIgn:".Length..].Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) & 2UL) != 0;

    private static string SignalMasks(string status) =>
        string.Join(", ", File.ReadLines(status).Where(l => l.StartsWith("SigIgn", StringComparison.Ordinal) || l.StartsWith("SigCgt", StringComparison.Ordinal)));

    [Fact]
    public void Generate_samples_with_the_KV_cache_and_by_recomputing_and_prints_both_speeds()
    {
        string dir = Directory.CreateTempSubdirectory("xformers-generate-").FullName;
        try
        {
            var run = Run("XFormers.TinyGpt", "--layers", "1", "--d", "16", "--heads", "1", "--seq", "8", "--batch", "2", "--vocab", "11", "--dtype", "fp32",
                "--steps", "2", "--plain", "--out", dir, "--generate", "10", "--prompt", "1,2,3", "--temperature", "0");
            run.ExitCode.ShouldBe(0, run.ToString());
            run.Stdout.ShouldContain("generate: 10 tokens after a prompt of 3, temperature 0, top-k all");
            run.Stdout.ShouldContain("KV cache:");
            run.Stdout.ShouldContain("recompute:");
            // Greedy in fp32, and 3 + 10 tokens pass the 8 positions: the cache restarts from its last half, the recomputing path slides.
            run.Stdout.ShouldContain("tokens/s");
            run.Stdout.ShouldNotContain("sample:");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string SingleLine(string text) => text.TrimEnd('\n').Split('\n').ShouldHaveSingleItem();

    private sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    private static Result Run(string sample, params string[] arguments)
    {
        var start = Start(sample, arguments);
        using var process = start.Process;
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{sample} {string.Join(' ', arguments)} ran past 2 minutes.");
        }
        return new Result(process.ExitCode, stdout, start.Stderr.Result);
    }

    /// <summary>
    /// Starts a sample's built dll; <paramref name="defaultSigint"/> starts it through <c>env --default-signal=INT</c>, so
    /// that it can catch SIGINT where this process ignores it.
    /// </summary>
    private static (Process Process, Task<string> Stderr) Start(string sample, string[] arguments, bool defaultSigint = false)
    {
        string root = ConsumerProjectTests.RepositoryRoot();
        string folder = sample == "XFormers.Bench" ? "bench" : "samples";
        string dll = Path.Combine(root, folder, sample, "bin", ConsumerProjectTests.Configuration, "net10.0", sample + ".dll");
        File.Exists(dll).ShouldBeTrue($"{dll} is built with the solution");
        var info = new ProcessStartInfo(defaultSigint ? "env" : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (defaultSigint)
        {
            info.ArgumentList.Add("--default-signal=INT");
            info.ArgumentList.Add("dotnet");
        }
        info.ArgumentList.Add(dll);
        foreach (var argument in arguments)
            info.ArgumentList.Add(argument);
        info.Environment["XFORMERS_DEVICE"] = "cpu";
        info.Environment["DOTNET_NOLOGO"] = "1";
        var process = Process.Start(info)!;
        return (process, process.StandardError.ReadToEndAsync());
    }
}
