extern alias Generators;

using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Generators::XFormers.Generators.Models;
using Generators::XFormers.Generators.Mods;

namespace XFormers.Tests.Generator;

/// <summary>Runs the mods compiler (Mods/) alone over a declaring type, as the parser does for its first [Attention] method.</summary>
internal static class ModTestSupport
{
    public const string Usings = "using System;\nusing XFormers;\nusing XFormers.Dsl;\n\n";

    public sealed record Compiled(ModsModel? Mods, IReadOnlyList<DiagnosticInfo> Diagnostics, CSharpCompilation Compilation);

    /// <summary>Compiles <paramref name="members"/> inside <c>static partial class K</c> and the mods its first [Attention] names.</summary>
    public static Compiled CompileMembers(string members) =>
        Compile("public static partial class K\n{\n" + members + "\n}\n");

    /// <summary>
    /// A stand-in <c>XFormers.Tensor&lt;T&gt;</c> with the host indexers the mods' tables are read with, for as long as the
    /// runtime's tensor lacks them (a source type takes precedence over the referenced one, with warning CS0436); none once
    /// the runtime has them.
    /// </summary>
    public static string[] TensorStandIn =>
        typeof(Tensor<int>).GetProperties().Any(p => p.GetIndexParameters().Length > 0)
            ? Array.Empty<string>()
            : new[]
            {
                """
                namespace XFormers
                {
                    public sealed class Tensor<T>
                    {
                        public T this[int i0] => default!;
                        public T this[int i0, int i1] => default!;
                        public T this[int i0, int i1, int i2] => default!;
                    }
                }
                """,
            };

    public static Compiled Compile(string source)
    {
        var compilation = GeneratorHarness.Compile(new[] { Usings + source }.Concat(TensorStandIn).ToArray());
        var tree = compilation.SyntaxTrees[0];
        var model = compilation.GetSemanticModel(tree);
        var method = tree.GetRoot().DescendantNodes().OfType<MethodDeclarationSyntax>()
            .First(m => m.AttributeLists.SelectMany(l => l.Attributes).Any(a => a.Name.ToString() == "Attention"));
        var symbol = model.GetDeclaredSymbol(method)!;
        var attribute = method.AttributeLists.SelectMany(l => l.Attributes).First(a => a.Name.ToString() == "Attention");
        ModReference? Reference(string name)
        {
            var argument = attribute.ArgumentList?.Arguments.FirstOrDefault(a => a.NameEquals?.Name.Identifier.Text == name);
            return argument is null ? null : new ModReference(model.GetConstantValue(argument.Expression).Value as string, argument.Expression);
        }
        var diagnostics = new List<DiagnosticInfo>();
        var mods = ModCompiler.Compile(model, symbol.ContainingType, Reference("ScoreMod"), Reference("MaskMod"), diagnostics, default);
        return new Compiled(mods, diagnostics, compilation);
    }

    /// <summary>The mods of a declaration that must compile: fails with the diagnostics otherwise.</summary>
    public static ModsModel Mods(string members)
    {
        var compiled = CompileMembers(members);
        compiled.Diagnostics.Select(d => d.Descriptor.Id + ": " + d.ToDiagnostic().GetMessage()).ShouldBeEmpty();
        return compiled.Mods.ShouldNotBeNull();
    }

    /// <summary>A score mod's IR: <paramref name="method"/> is a method <c>S</c> (and anything it needs).</summary>
    public static ModBody Score(string method) =>
        Mods("[Attention(ScoreMod = nameof(S))] public static partial AttentionKernel V();\n" + method).Score.ShouldNotBeNull();
}
