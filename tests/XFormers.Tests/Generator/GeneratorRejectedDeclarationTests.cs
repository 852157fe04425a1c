using System.Globalization;
using System.Text;
using Microsoft.CodeAnalysis;

namespace XFormers.Tests.Generator;

/// <summary>
/// A declaration the generator rejects gets a body that only throws, so the build shows its XFA errors and nothing else
/// (no CS8795 for a partial method left without an implementation); and random declarations never make the generator
/// throw or write code that does not compile.
/// </summary>
public class GeneratorRejectedDeclarationTests
{
    /// <summary>Declarations per run of <see cref="RandomDeclarationsOnlyEverFailWithXfaErrors"/>; a nightly run sets a larger count.</summary>
    public const string FuzzCountVariable = "XFORMERS_GENERATOR_FUZZ_COUNT";

    private const int DefaultCount = 2000;

    /// <summary>Variant files (each of another kernel configuration) whose kernel bodies are compiled, per compilation of a default run.</summary>
    private const int KernelFilesPerCompilation = 4;

    [Fact]
    public void RejectedDeclarationsLeaveOnlyTheirXfaErrors()
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + """
            namespace App;

            public static partial class Kernels
            {
                [Attention(HeadDim = 50)]
                public static partial AttentionKernel BadHeadDim();

                [Attention]
                public static partial int ReturnsInt();

                [Attention]
                public static partial AttentionKernel? ReturnsNullable();

                [Attention]
                public static partial AttentionKernel WithParameters(int heads, ref float x, out int y, params int[] rest);

                [Attention]
                public static partial ref AttentionKernel ByRef();

                [Attention(BlockM = 64, BlockN = 48)]
                internal static partial AttentionKernel TilesDoNotDivide();

                [Attention(Mask = (MaskKind)17)]
                private static partial AttentionKernel UnknownMask();

                [Attention(Bias = BiasKind.Alibi, BiasGradient = true)]
                public static partial AttentionKernel Conflicting();

                [Attention]
                public static partial AttentionKernel Valid();
            }

            public partial class Instance
            {
                [Attention]
                public partial AttentionKernel NotStatic();
            }

            public static partial class Outer
            {
                private static partial class Hidden
                {
                    [Attention]
                    public static partial AttentionKernel InPrivateType();
                }
            }

            public static partial class Reserved
            {
                [Attention]
                public static partial AttentionKernel Collides();

                private static int __XFormers_Counter;
            }
            """).ShouldNotHaveThrown();

        run.OutputErrors.Select(d => d.Id).OrderBy(id => id, StringComparer.Ordinal).ShouldBe(new[]
        {
            "XFA0001", "XFA0002", "XFA0003", "XFA0003", "XFA0004", "XFA0006", "XFA0009", "XFA0011", "XFA0012", "XFA0013", "XFA0014",
        });
        run.Sources.Values.Count(GeneratorHarness.IsStub).ShouldBe(11);
        run.Sources.Keys.ShouldContain("App.Kernels.Valid.g.cs");
    }

    [Fact]
    public void StandInBodyThrowsNamingTheDeclaration()
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + """
            public static partial class Kernels
            {
                [Attention(HeadDim = 50, BlockN = 7)]
                public static partial AttentionKernel Broken();
            }
            """).ShouldNotHaveThrown();

        var stub = run.Sources["Kernels.Broken.g.cs"];
        stub.ShouldContain("public static partial global::XFormers.AttentionKernel Broken() =>");
        stub.ShouldContain("throw new global::System.InvalidOperationException(\"The [Attention] declaration Kernels.Broken has errors (XFA0004, XFA0005); fix them and rebuild.\");");
        run.OutputErrors.Select(d => d.Id).ShouldBe(new[] { "XFA0004", "XFA0005" }, ignoreOrder: true);
    }

    [Fact]
    public void SignaturesThatCannotBeImplementedGetNoStandIn()
    {
        // Not partial (nothing to implement), a body already, extern, a non-partial type, a generic method, an unknown
        // return type: a stand-in would add errors of its own, so the generator writes none.
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + """
            public static partial class Kernels
            {
                [Attention] public static AttentionKernel NotPartial() => null!;
                [Attention] public static extern partial AttentionKernel External();
                [Attention] public static partial AttentionKernel Generic<T>();
                [Attention] public static partial Missing Unknown();
            }

            public static class Plain
            {
                [Attention] public static partial AttentionKernel InPlainType();
            }
            """).ShouldNotHaveThrown();

        run.Sources.Values.Where(GeneratorHarness.IsStub).ShouldBeEmpty();
        run.Sources.ShouldBeEmpty();
    }

    [Fact]
    public void RandomDeclarationsOnlyEverFailWithXfaErrors()
    {
        int count = int.TryParse(Environment.GetEnvironmentVariable(FuzzCountVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : DefaultCount;
        const int perCompilation = 250;
        var random = new Random(20261130);
        int generatedVariants = 0, rejected = 0;
        for (int first = 0; first < count; first += perCompilation)
        {
            var batch = Enumerable.Range(first, Math.Min(perCompilation, count - first)).Select(i => RandomDeclaration(random, i)).ToList();
            var source = GeneratorHarness.Usings + "namespace Fuzz;\n\n" + string.Concat(batch.Select(d => d.Source));
            var run = GeneratorHarness.Run(source).ShouldNotHaveThrown();
            run.Diagnostics.ShouldNotContain(d => d.Id == "XFA0099");

            // The user's file: XFA errors only, except CS8795 for a generic method (no stand-in can repeat its type parameters).
            var userTree = run.Output.SyntaxTrees.First(t => t.FilePath == GeneratorHarness.DeclarationsPath);
            var userErrors = run.Output.GetSemanticModel(userTree).GetDiagnostics().Concat(run.Diagnostics)
                .Where(d => d.Severity == DiagnosticSeverity.Error)
                .ToList();
            var generic = batch.Where(d => d.Generic).Select(d => d.Method).ToHashSet();
            userErrors.Where(d => !d.Id.StartsWith("XFA", StringComparison.Ordinal) && !(d.Id == "CS8795" && generic.Any(g => d.GetMessage().Contains($".{g}<T>(", StringComparison.Ordinal))))
                .Select(d => d.ToString()).ShouldBeEmpty();

            // Every declaration is generated or reported on its own lines.
            var reportedLines = run.Diagnostics.Select(d => d.Location.GetLineSpan().StartLinePosition.Line).ToHashSet();
            var lines = SourceLines(source);
            foreach (var declaration in batch)
            {
                bool generated = run.Sources.Any(s => s.Key == $"Fuzz.{declaration.Type}.{declaration.Method}.g.cs" && !GeneratorHarness.IsStub(s.Value));
                bool reported = reportedLines.Any(line => lines[line].Contains($"/*{declaration.Method}*/", StringComparison.Ordinal));
                (generated ^ reported).ShouldBeTrue($"{declaration.Method} is {(generated ? "generated and reported" : "neither generated nor reported")}:\n{declaration.Source}");
                generatedVariants += generated ? 1 : 0;
                rejected += reported ? 1 : 0;
            }

            // Generated code: declarations everywhere; method bodies of the stand-ins, the dispatch tables and of a few variant
            // files of distinct kernel configurations per compilation (every one in a larger run; the kernels themselves
            // are covered by the snapshot tests, and binding them all would take minutes).
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var tree in run.Output.SyntaxTrees.Where(t => t.FilePath.EndsWith(".g.cs", StringComparison.Ordinal)))
            {
                var model = run.Output.GetSemanticModel(tree);
                var text = tree.ToString();
                bool full = GeneratorHarness.IsStub(text) || tree.FilePath.EndsWith(".XFormersRegistry.g.cs", StringComparison.Ordinal)
                    || ((seen.Count < KernelFilesPerCompilation || count > DefaultCount) && seen.Add(Configuration(text)));
                var errors = (full ? model.GetDiagnostics() : model.GetDeclarationDiagnostics()).Where(d => d.Severity == DiagnosticSeverity.Error);
                errors.Select(d => d.ToString()).ShouldBeEmpty(tree.FilePath);
            }
        }
        generatedVariants.ShouldBeGreaterThan(count / 20);
        rejected.ShouldBeGreaterThan(count / 4);
    }

    private sealed record Declaration(string Type, string Method, string Source, bool Generic);

    /// <summary>
    /// One declaration that is legal C# (whatever the generator thinks of it) in a type of its own: attribute values in and
    /// out of range, accessibility, static or not, return types, parameters, generic methods, nesting, a reserved name.
    /// </summary>
    private static Declaration RandomDeclaration(Random random, int index)
    {
        T Pick<T>(params T[] values) => values[random.Next(values.Length)];
        var arguments = new List<string>();
        void Maybe(double probability, string argument)
        {
            if (random.NextDouble() < probability)
                arguments.Add(argument);
        }
        string masks = Pick(
            "MaskKind.None", "MaskKind.Causal", "MaskKind.CausalFromBottomRight", "MaskKind.BlockDiagonal", "MaskKind.BlockDiagonalCausal",
            "MaskKind.CausalLocalFromBottomRight", "MaskKind.BlockDiagonalCausalFromBottomRight", "MaskKind.BlockDiagonalCausalLocal",
            "MaskKind.BlockDiagonalCausalLocalFromBottomRight");
        Maybe(0.5, "Mask = " + (random.NextDouble() < 0.1 ? $"(MaskKind)({random.Next(-2, 12)})" : masks));
        Maybe(0.4, "Bias = " + (random.NextDouble() < 0.1 ? $"(BiasKind)({random.Next(-2, 6)})" : Pick("BiasKind.None", "BiasKind.Tensor", "BiasKind.Alibi")));
        Maybe(0.6, "DType = " + (random.NextDouble() < 0.1 ? $"(DType)({random.Next(-2, 6)})" : Pick("DType.Float32", "DType.Float16", "DType.BFloat16")));
        Maybe(0.7, "HeadDim = " + (random.NextDouble() < 0.8 ? 8 * random.Next(1, 33) : Pick(0, 7, 50, 264, -8, 1 << 20)));
        Maybe(0.3, "BlockM = " + Pick(0, 16, 32, 64, 128, 3, 48, 256));
        Maybe(0.3, "BlockN = " + Pick(0, 16, 32, 48, 64, 80, 128, 8, 200));
        Maybe(0.3, "Heads = " + Pick(0, 1, 2, 4, 8, 3, -1));
        Maybe(0.2, "KvHeads = " + Pick(0, 1, 2, 4, 3, -2));
        Maybe(0.2, "BiasGradient = " + Pick("true", "false"));
        Maybe(0.2, "Backward = " + Pick("true", "false"));
        var attribute = arguments.Count == 0 ? "[Attention]" : $"[Attention({string.Join(", ", arguments.OrderBy(_ => random.Next()))})]";

        string method = $"M{index}";
        bool isStatic = random.NextDouble() < 0.85;
        bool generic = random.NextDouble() < 0.03;
        string access = Pick("public", "public", "internal", "private");
        string returnType = random.NextDouble() < 0.8 ? "AttentionKernel" : Pick("AttentionKernel?", "int", "AttentionKernel<float>", "ref AttentionKernel", "ref readonly AttentionKernel", "string", "void");
        string parameters = random.NextDouble() < 0.9 ? "" : Pick("int heads", "ref float x", "out int y", "params int[] rest", "in double d, string s = \"x\"");
        if (returnType == "void" && !parameters.Contains("out", StringComparison.Ordinal))
            access = Pick("public", "private", "");
        string typeParameters = generic ? "<T>" : "";
        string modifiers = string.Join(" ", new[] { access, isStatic ? "static" : "", "partial" }.Where(m => m.Length > 0));
        string declaration = $"    {attribute} /*{method}*/\n    {modifiers} {returnType} /*{method}*/{method}{typeParameters}({parameters});\n";

        // Its own type: static or not (instance methods need a non-static class), sometimes nested, sometimes with a reserved member.
        string type = $"T{index}";
        string reserved = random.NextDouble() < 0.02 ? $"    private static int __XFormers_{index}; /*{method}*/\n" : "";
        string keyword = Pick("class", "class", "struct", "record");
        string body = declaration + reserved;
        if (random.NextDouble() < 0.1)
        {
            string inner = $"I{index}";
            return new Declaration($"{type}+{inner}", method,
                $"public {(isStatic && keyword == "class" ? "static " : "")}partial {keyword} {type} /*{method}*/\n{{\n    {Pick("public", "internal", "private")} {(isStatic && keyword == "class" ? "static " : "")}partial {keyword} {inner} /*{method}*/\n    {{\n    {body.Replace("\n    ", "\n        ")}    }}\n}}\n\n",
                generic);
        }
        return new Declaration(type, method, $"public {(isStatic && keyword == "class" ? "static " : "")}partial {keyword} {type} /*{method}*/\n{{\n{body}}}\n\n", generic);
    }

    private static string[] SourceLines(string source) => source.Split('\n');

    /// <summary>The kernel configuration a variant file was generated for (its summary line), without the names.</summary>
    private static string Configuration(string generated)
    {
        var lines = generated.Split('\n');
        return lines.Length > 2 ? lines[2] + (lines[1].Contains("tensor-core", StringComparison.Ordinal) ? " tc" : "") : generated;
    }
}
