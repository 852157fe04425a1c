extern alias Generators;

using System.Collections.Immutable;
using System.IO;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Generators::XFormers.Generators;

namespace XFormers.Tests.Generator;

/// <summary>
/// Runs <see cref="AttentionGenerator"/> in-process over C# source strings, the way the compiler would:
/// a compilation against the BCL, XFormers.Dsl, XFormers.Runtime and ILGPU, and a generator driver that
/// tracks the pipeline's steps (for the caching tests).
/// </summary>
internal static class GeneratorHarness
{
    /// <summary>The path of the first source in every compilation; diagnostics point into it.</summary>
    public const string DeclarationsPath = "Declarations.cs";

    /// <summary>What a declaring file starts with.</summary>
    public const string Usings = "using XFormers;\nusing XFormers.Dsl;\n\n";

    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    private static readonly CSharpCompilationOptions CompilationOptions = new(
        OutputKind.DynamicallyLinkedLibrary,
        nullableContextOptions: NullableContextOptions.Enable);

    /// <summary>
    /// The shared framework's assemblies (from the test host's trusted platform assemblies) plus the three
    /// the generated code names. Loaded once: reading ~170 metadata files per test would dominate the run.
    /// </summary>
    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(() =>
    {
        var frameworkDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var trusted = ((string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Where(path => Path.GetDirectoryName(path) == frameworkDirectory);
        var xformers = new[]
        {
            typeof(AttentionAttribute).Assembly.Location,       // XFormers.Dsl
            typeof(AttentionKernel).Assembly.Location,          // XFormers.Runtime
            typeof(ILGPU.Context).Assembly.Location,            // ILGPU
        };
        return trusted.Concat(xformers)
            .Distinct()
            .Select(path => (MetadataReference)MetadataReference.CreateFromFile(path))
            .ToImmutableArray();
    });

    /// <summary>A compilation of the sources; the first is <see cref="DeclarationsPath"/>, the others Other1.cs, Other2.cs, ...</summary>
    public static CSharpCompilation Compile(params string[] sources) =>
        CSharpCompilation.Create(
            "GeneratorTests",
            sources.Select((source, i) => CSharpSyntaxTree.ParseText(source, ParseOptions, i == 0 ? DeclarationsPath : $"Other{i}.cs")),
            References.Value,
            CompilationOptions);

    /// <summary>A driver holding a fresh <see cref="AttentionGenerator"/>, with step tracking on.</summary>
    public static GeneratorDriver CreateDriver() =>
        CSharpGeneratorDriver.Create(
            new[] { new AttentionGenerator().AsSourceGenerator() },
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Whether a generated file is the throwing stand-in body of a rejected declaration.</summary>
    public static bool IsStub(string generated) => generated.Contains("This body only stands in for the kernels", StringComparison.Ordinal);

    /// <summary>Compiles the sources and runs the generator once over them.</summary>
    public static GeneratorRun Run(params string[] sources) => Run(CreateDriver(), Compile(sources));

    /// <summary>Runs the driver (fresh, or one that already ran: then only what changed re-runs) over the compilation.</summary>
    public static GeneratorRun Run(GeneratorDriver driver, CSharpCompilation compilation)
    {
        driver = driver.RunGeneratorsAndUpdateCompilation(compilation, out var output, out var driverDiagnostics);
        return new GeneratorRun(driver, compilation, output, driver.GetRunResult().Results.Single(), driverDiagnostics);
    }
}

/// <summary>What one generator run produced.</summary>
/// <param name="Driver">The driver after the run; run it again over an edited compilation to test caching.</param>
/// <param name="Input">The compilation the generator saw.</param>
/// <param name="Output">The input plus the generated sources.</param>
/// <param name="Result">The generator's own result: sources, diagnostics, exception, tracked steps.</param>
/// <param name="DriverDiagnostics">What the driver reported (CS8784/CS8785 when a generator throws).</param>
internal sealed record GeneratorRun(
    GeneratorDriver Driver,
    CSharpCompilation Input,
    Compilation Output,
    GeneratorRunResult Result,
    ImmutableArray<Diagnostic> DriverDiagnostics)
{
    /// <summary>The diagnostics the generator reported (XFA....).</summary>
    public ImmutableArray<Diagnostic> Diagnostics => Result.Diagnostics;

    /// <summary>The variant files and dispatch tables, by hint name (tensor-core companions are in <see cref="TensorCoreSources"/>).</summary>
    public IReadOnlyDictionary<string, string> Sources =>
        Result.GeneratedSources.Where(s => !s.HintName.EndsWith(TensorCoreSuffix, StringComparison.Ordinal) && !s.HintName.EndsWith(HopperSuffix, StringComparison.Ordinal))
            .ToDictionary(s => s.HintName, s => s.SourceText.ToString());

    /// <summary>The sm_90a forward modules a 16-bit variant's file gets beside it (Templates/Hopper.liquid, Hopper/HopperForwardEmitter.cs).</summary>
    public IReadOnlyDictionary<string, string> HopperSources =>
        Result.GeneratedSources.Where(s => s.HintName.EndsWith(HopperSuffix, StringComparison.Ordinal))
            .ToDictionary(s => s.HintName, s => s.SourceText.ToString());

    public const string HopperSuffix = ".Hopper.g.cs";

    /// <summary>
    /// The tensor-core kernels a 16-bit variant's file gets beside it (Templates/TensorCore.liquid and the kernel
    /// templates it includes).
    /// </summary>
    public IReadOnlyDictionary<string, string> TensorCoreSources =>
        Result.GeneratedSources.Where(s => s.HintName.EndsWith(TensorCoreSuffix, StringComparison.Ordinal))
            .ToDictionary(s => s.HintName, s => s.SourceText.ToString());

    public const string TensorCoreSuffix = ".TensorCore.g.cs";

    /// <summary>Errors of the compilation with the generated sources added, the generator's own diagnostics included.</summary>
    public IReadOnlyList<Diagnostic> OutputErrors =>
        Output.GetDiagnostics().Concat(Diagnostics).Where(d => d.Severity == DiagnosticSeverity.Error).ToList();

    /// <summary>Fails when the generator threw, in initialization (CS8784) or while running (CS8785).</summary>
    public GeneratorRun ShouldNotHaveThrown()
    {
        Result.Exception.ShouldBeNull();
        DriverDiagnostics.Where(d => d.Id is "CS8784" or "CS8785").ShouldBeEmpty();
        return this;
    }
}
