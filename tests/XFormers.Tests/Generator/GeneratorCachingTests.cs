extern alias Generators;

using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Generators::XFormers.Generators;

namespace XFormers.Tests.Generator;

/// <summary>
/// Incremental caching: the driver runs once, the compilation is edited, the same driver runs again, and the steps
/// named in <see cref="AttentionGenerator.TrackingNames"/> say what re-ran. An edit that cannot change any kernel
/// must leave every step and every output Cached or Unchanged; a real change must show as Modified, and only where
/// it belongs.
/// </summary>
public class GeneratorCachingTests
{
    private static readonly string[] Steps =
    {
        AttentionGenerator.TrackingNames.Variants,
        AttentionGenerator.TrackingNames.Models,
        AttentionGenerator.TrackingNames.VariantFiles,
        AttentionGenerator.TrackingNames.Registries,
    };

    private const string Declarations = """
        using XFormers;
        using XFormers.Dsl;

        namespace MyApp;

        public static partial class Kernels
        {
            [Attention(Mask = MaskKind.Causal, HeadDim = 64)]
            public static partial AttentionKernel Causal64();

            [Attention(Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float32)]
            public static partial AttentionKernel Alibi32();
        }
        """;

    private const string Other = """
        namespace MyApp;

        public static class Helpers
        {
            public static int Twice(int x) => 2 * x;
        }
        """;

    public static TheoryData<string> NoOpEdits => new()
    {
        "comment above the declarations",
        "whitespace and line breaks inside a declaration",
        "a method body in another file",
        "a new file with an unrelated class",
    };

    [Theory]
    [MemberData(nameof(NoOpEdits))]
    public void NoOpEditReRunsNothing(string edit)
    {
        var first = GeneratorHarness.Run(Declarations, Other).ShouldNotHaveThrown();
        first.Sources.Count.ShouldBe(3);

        var second = GeneratorHarness.Run(first.Driver, Apply(first.Input, edit)).ShouldNotHaveThrown();

        var outputs = second.Result.TrackedOutputSteps.SelectMany(pair => pair.Value).ToList();
        outputs.ShouldNotBeEmpty();
        var reRun = Steps
            .SelectMany(step => Reasons(second.Result.TrackedSteps[step]).Select(reason => (Step: step, Reason: reason)))
            .Concat(Reasons(outputs).Select(reason => (Step: "output", Reason: reason)))
            .Where(s => s.Reason is not (IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged))
            .Select(s => $"{s.Step}: {s.Reason}");
        reRun.ShouldBeEmpty();
        second.Sources.ShouldBe(first.Sources);
    }

    /// <summary>The positive control: HeadDim 64 → 32 re-emits that variant alone; the dispatch table stays as it was.</summary>
    [Fact]
    public void HeadDimChangeReEmitsThatVariantOnly()
    {
        var first = GeneratorHarness.Run(Declarations, Other).ShouldNotHaveThrown();

        var second = GeneratorHarness.Run(first.Driver, Replace(first.Input, GeneratorHarness.DeclarationsPath,
            Declarations.Replace("Mask = MaskKind.Causal, HeadDim = 64", "Mask = MaskKind.Causal, HeadDim = 32"))).ShouldNotHaveThrown();

        Reasons(second.Result.TrackedSteps[AttentionGenerator.TrackingNames.Variants]).ShouldContain(IncrementalStepRunReason.Modified);
        Reasons(second.Result.TrackedSteps[AttentionGenerator.TrackingNames.Models]).ShouldContain(IncrementalStepRunReason.Modified);
        var files = second.Result.TrackedSteps[AttentionGenerator.TrackingNames.VariantFiles]
            .SelectMany(s => s.Outputs)
            .Select(o => (Hint: HintName(o.Value), o.Reason))
            .OrderBy(o => o.Hint, StringComparer.Ordinal)
            .ToList();
        files.ShouldBe(new[]
        {
            ("MyApp.Kernels.Alibi32.g.cs", IncrementalStepRunReason.Unchanged),
            ("MyApp.Kernels.Causal64.g.cs", IncrementalStepRunReason.Modified),
        });
        Reasons(second.Result.TrackedSteps[AttentionGenerator.TrackingNames.Registries]).ShouldAllBe(r => r == IncrementalStepRunReason.Unchanged);
        Reasons(second.Result.TrackedOutputSteps.SelectMany(pair => pair.Value)).ShouldContain(IncrementalStepRunReason.Modified);

        second.Sources["MyApp.Kernels.Causal64.g.cs"].ShouldContain("public const int HeadDim = 32;");
        second.Sources["MyApp.Kernels.Alibi32.g.cs"].ShouldBe(first.Sources["MyApp.Kernels.Alibi32.g.cs"]);
    }

    private static CSharpCompilation Apply(CSharpCompilation compilation, string edit) => edit switch
    {
        "comment above the declarations" => Replace(compilation, GeneratorHarness.DeclarationsPath,
            Declarations.Replace("public static partial class Kernels", "// Kernels for the app.\npublic static partial class Kernels")),
        "whitespace and line breaks inside a declaration" => Replace(compilation, GeneratorHarness.DeclarationsPath,
            Declarations
                .Replace("[Attention(Mask = MaskKind.Causal, HeadDim = 64)]", "[Attention( Mask = MaskKind.Causal,\n        HeadDim   =   64 )]")
                .Replace("public static partial AttentionKernel Causal64();", "public\n    static   partial AttentionKernel Causal64 ( ) ;")),
        "a method body in another file" => Replace(compilation, "Other1.cs", Other.Replace("2 * x", "x + x")),
        "a new file with an unrelated class" => compilation.AddSyntaxTrees(
            CSharpSyntaxTree.ParseText("namespace MyApp; internal sealed class Unrelated { }", GeneratorHarness.ParseOptions, "Other2.cs")),
        _ => throw new ArgumentOutOfRangeException(nameof(edit), edit, null),
    };

    private static CSharpCompilation Replace(CSharpCompilation compilation, string path, string text)
    {
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == path);
        return compilation.ReplaceSyntaxTree(old, CSharpSyntaxTree.ParseText(text, GeneratorHarness.ParseOptions, path));
    }

    /// <summary>The hint name of a VariantFiles output (the generator's model records are internal).</summary>
    private static string HintName(object variantFile) =>
        (string)variantFile.GetType().GetProperty("HintName")!.GetValue(variantFile)!;

    private static IEnumerable<IncrementalStepRunReason> Reasons(IEnumerable<IncrementalGeneratorRunStep> steps) =>
        steps.SelectMany(s => s.Outputs).Select(o => o.Reason);
}
