extern alias Generators;

using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Generators::XFormers.Generators;
using Generators::XFormers.Generators.Models;

namespace XFormers.Tests.Generator;

/// <summary>
/// Mods through the whole generator: the variant's model carries them (VariantModel.Mods), the generated compilation has
/// no error, and the model caches: an edit that changes nothing leaves it Unchanged, an edit of the mod Modified.
/// </summary>
public class ModGeneratorTests
{
    private const string Declarations = """
        using System;
        using XFormers;
        using XFormers.Dsl;

        namespace MyApp;

        public static partial class MyKernels
        {
            [Attention(HeadDim = 64, DType = DType.BFloat16, ScoreMod = nameof(Softcap), MaskMod = nameof(Window))]
            public static partial AttentionKernel SoftcapWindow();

            static float Softcap(float score, int batch, int head, int q, int kv) => 30f * MathF.Tanh(score / 30f);
            static bool Window(int batch, int head, int q, int kv) => q >= kv && q - kv < 1024;

            public struct DocArgs { public Tensor<int> DocId; public int Window; public float Cap; public bool Flag; }

            [Attention(Mask = MaskKind.Causal, HeadDim = 64, MaskMod = nameof(SameDoc))]
            public static partial AttentionKernel DocMask();

            static bool SameDoc(int batch, int head, int q, int kv, in DocArgs args) => args.DocId[q] == args.DocId[kv] && q - kv < args.Window;

            [Attention(HeadDim = 64)]
            public static partial AttentionKernel Plain();
        }
        """;

    private static GeneratorRun Run() =>
        GeneratorHarness.Run(new[] { Declarations }.Concat(ModTestSupport.TensorStandIn).ToArray()).ShouldNotHaveThrown();

    private static Dictionary<string, VariantModel> Models(GeneratorRun run) =>
        run.Result.TrackedSteps[AttentionGenerator.TrackingNames.Models]
            .SelectMany(step => step.Outputs)
            .Select(output => (VariantModel)output.Value)
            .ToDictionary(model => model.Declaration.MethodName);

    [Fact]
    public void TheModelCarriesTheModsAndTheGeneratedCodeCompiles()
    {
        var run = Run();
        run.Diagnostics.ShouldBeEmpty();
        run.OutputErrors.Select(d => d.ToString()).ShouldBeEmpty();

        var models = Models(run);
        var softcap = models["SoftcapWindow"];
        softcap.Mods.ShouldNotBeNull().ScoreBody.ShouldBe(new[] { "return 30f * global::XFormers.Kernels.KernelMath.Tanh(score / 30f);" });
        softcap.Summary.ShouldEndWith(", score mod Softcap, mask mod Window");

        var doc = models["DocMask"].Mods.ShouldNotBeNull();
        doc.HasScore.ShouldBeFalse();
        doc.ArgsType.ShouldBe("global::MyApp.MyKernels.DocArgs");
        doc.BindBody.ShouldBe(new[] { "m.IntTable(0, args.DocId, 1, \"DocId\");", "m.Int(0, args.Window);" });
        models["DocMask"].Summary.ShouldEndWith(", mask mod SameDoc");

        models["Plain"].Mods.ShouldBeNull();
        models["Plain"].Summary.ShouldNotContain("mod");
    }

    [Fact]
    public void WhitespaceInAModReRunsTheParseButLeavesTheModelUnchanged()
    {
        var first = Run();
        var second = GeneratorHarness.Run(first.Driver, Replace(first.Input, Declarations.Replace("=> 30f * MathF.Tanh(score / 30f);", "=>\n        30f  *  MathF.Tanh( score / 30f );")))
            .ShouldNotHaveThrown();
        Reasons(second, AttentionGenerator.TrackingNames.Models).ShouldAllBe(r => r == IncrementalStepRunReason.Unchanged || r == IncrementalStepRunReason.Cached);
    }

    [Fact]
    public void EditingAModReEmitsItsVariant()
    {
        var first = Run();
        var second = GeneratorHarness.Run(first.Driver, Replace(first.Input, Declarations.Replace("score / 30f", "score / 20f"))).ShouldNotHaveThrown();
        Reasons(second, AttentionGenerator.TrackingNames.Models).ShouldContain(IncrementalStepRunReason.Modified);
        Models(second)["SoftcapWindow"].Mods!.ScoreBody.ShouldBe(new[] { "return 30f * global::XFormers.Kernels.KernelMath.Tanh(score / 20f);" });
    }

    private static CSharpCompilation Replace(CSharpCompilation compilation, string text)
    {
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == GeneratorHarness.DeclarationsPath);
        return compilation.ReplaceSyntaxTree(old, CSharpSyntaxTree.ParseText(text, GeneratorHarness.ParseOptions, GeneratorHarness.DeclarationsPath));
    }

    private static IEnumerable<IncrementalStepRunReason> Reasons(GeneratorRun run, string step) =>
        run.Result.TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => o.Reason);
}
