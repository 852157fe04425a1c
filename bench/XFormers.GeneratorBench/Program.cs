extern alias Generators;

using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.NoEmit;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Generators::XFormers.Generators;

namespace XFormers.GeneratorBench
{
    /// <summary>
    /// <c>dotnet run -c Release --project bench/XFormers.GeneratorBench [-- --quick]</c>: the time the generator takes over
    /// <see cref="Declarations.Count"/> variants with mods (FlexAttention's cases at HeadDim 64 and 128, fp16 and bf16), from
    /// a fresh driver each time, as a clean build runs it. Prints the first run in this process (the generator's own code
    /// still cold), then the median of warm runs; without <c>--quick</c>, BenchmarkDotNet's statistics after.
    /// </summary>
    public static class Program
    {
        public static int Main(string[] args)
        {
            var compilation = Declarations.Compilation();
            var watch = Stopwatch.StartNew();
            var files = Declarations.Generate(compilation);
            double first = watch.Elapsed.TotalMilliseconds;
            long bytes = files.Sum(f => (long)f.Length);
            Console.WriteLine($"generator: {Declarations.Count} variants with mods, {files.Count} files, {bytes / 1024.0 / 1024.0:0.0} MiB of source " +
                              $"({Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture})");
            Console.WriteLine($"first run in a fresh process: {first:0} ms");
            var warm = new List<double>();
            for (int i = 0; i < 5; i++)
            {
                watch.Restart();
                Declarations.Generate(compilation);
                warm.Add(watch.Elapsed.TotalMilliseconds);
            }
            warm.Sort();
            Console.WriteLine($"warm runs: median {warm[warm.Count / 2]:0} ms (min {warm[0]:0}, max {warm[^1]:0}, {warm.Count} runs)");
            if (args.Contains("--quick"))
                return 0;
            var config = ManualConfig.Create(DefaultConfig.Instance)
                .AddJob(Job.ShortRun.WithToolchain(InProcessNoEmitToolchain.Instance))
                .WithOptions(ConfigOptions.DisableOptimizationsValidator);
            BenchmarkRunner.Run<GeneratorBenchmarks>(config);
            return 0;
        }
    }

    public class GeneratorBenchmarks
    {
        private CSharpCompilation compilation = null!;

        [GlobalSetup]
        public void Setup() => compilation = Declarations.Compilation();

        /// <summary>A fresh driver over the declarations: every variant generated, as in a clean build.</summary>
        [Benchmark]
        public int TwentyVariantsWithMods() => Declarations.Generate(compilation).Count;
    }

    /// <summary>The declarations, and the compilation and driver the compiler would build for them.</summary>
    internal static class Declarations
    {
        private static readonly (string Name, string Attribute, string Mod)[] Mods =
        {
            ("Causal", "MaskMod = nameof(CausalMod)", "static bool CausalMod(int batch, int head, int q, int kv) => q >= kv;"),
            ("Softcap", "Mask = MaskKind.Causal, ScoreMod = nameof(Softcap)", "static float Softcap(float score, int batch, int head, int q, int kv) => 30f * MathF.Tanh(score / 30f);"),
            ("Alibi", "Mask = MaskKind.Causal, ScoreMod = nameof(Alibi)", "static float Alibi(float score, int batch, int head, int q, int kv, in Args args) => score + args.Slopes[head] * (kv - q);"),
            ("Window", "MaskMod = nameof(Window)", "static bool Window(int batch, int head, int q, int kv, in Args args) => q >= kv && q - kv < args.Window;"),
            ("Document", "MaskMod = nameof(Document)", "static bool Document(int batch, int head, int q, int kv, in Args args) => args.DocId[q] == args.DocId[kv] && q >= kv;"),
        };

        public static int Count => Mods.Length * 2 * 2;

        public static string Source()
        {
            var s = new StringBuilder("using System;\nusing XFormers;\nusing XFormers.Dsl;\n\nnamespace Bench;\n\npublic static partial class Variants\n{\n");
            s.Append("    public struct Args { public int Window; public Tensor<int> DocId; public Tensor<float> Slopes; }\n\n");
            foreach (var (name, attribute, mod) in Mods)
            {
                foreach (int k in new[] { 64, 128 })
                {
                    foreach (string dtype in new[] { "Float16", "BFloat16" })
                    {
                        s.Append($"    [Attention(HeadDim = {k}, DType = DType.{dtype}, {attribute})]\n");
                        s.Append($"    public static partial AttentionKernel {name}{k}{dtype}();\n");
                    }
                }
                s.Append("    ").Append(mod).Append("\n\n");
            }
            return s.Append("}\n").ToString();
        }

        public static CSharpCompilation Compilation()
        {
            var frameworkDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
            var trusted = ((string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? "")
                .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
                .Where(path => Path.GetDirectoryName(path) == frameworkDirectory);
            var references = trusted
                .Concat(new[] { typeof(Dsl.AttentionAttribute).Assembly.Location, typeof(AttentionKernel).Assembly.Location, typeof(ILGPU.Context).Assembly.Location })
                .Distinct()
                .Select(path => (MetadataReference)MetadataReference.CreateFromFile(path))
                .ToImmutableArray();
            return CSharpCompilation.Create(
                "GeneratorBench",
                new[] { CSharpSyntaxTree.ParseText(Source(), new CSharpParseOptions(LanguageVersion.Latest), "Declarations.cs") },
                references,
                new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        }

        /// <summary>Runs a fresh generator driver; the generated files' texts. Throws on a diagnostic or an exception.</summary>
        public static IReadOnlyList<string> Generate(CSharpCompilation compilation)
        {
            GeneratorDriver driver = CSharpGeneratorDriver.Create(
                new[] { new AttentionGenerator().AsSourceGenerator() }, parseOptions: new CSharpParseOptions(LanguageVersion.Latest));
            driver = driver.RunGenerators(compilation);
            var result = driver.GetRunResult().Results.Single();
            if (result.Exception is { } exception)
                throw new InvalidOperationException("the generator threw", exception);
            if (result.Diagnostics.FirstOrDefault(d => d.Severity == DiagnosticSeverity.Error) is { } error)
                throw new InvalidOperationException("the generator reported " + error);
            if (result.GeneratedSources.Count(s => s.HintName.Contains("Hopper", StringComparison.Ordinal)) < Count)
                throw new InvalidOperationException("fewer sm_90a files than variants: " + string.Join(", ", result.GeneratedSources.Select(s => s.HintName)));
            return result.GeneratedSources.Select(s => s.SourceText.ToString()).ToList();
        }
    }
}
