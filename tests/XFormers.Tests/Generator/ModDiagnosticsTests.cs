using System.Globalization;
using Microsoft.CodeAnalysis;

namespace XFormers.Tests.Generator;

/// <summary>
/// One test per mod diagnostic (XFA0015 … XFA0023): the ID on exactly the offending text ({|XFA....:text|} marks it), and
/// no kernels for the declaration that names the broken mod, while its sibling is generated.
/// </summary>
public class ModDiagnosticsTests
{
    private const string Score = "float score, int batch, int head, int q, int kv";
    private const string Mask = "int batch, int head, int q, int kv";

    [Fact]
    public void XFA0015_ModNotFound_OnTheAttributeArgument()
    {
        var run = Verify($$"""
            public static partial class Kernels
            {
                [Attention(ScoreMod = {|XFA0015:"Missing"|})]
                public static partial AttentionKernel A();

                [Attention(MaskMod = {|XFA0015:nameof(Over)|})]
                public static partial AttentionKernel B();

                [Attention(ScoreMod = {|XFA0015:nameof(NotAMethod)|})]
                public static partial AttentionKernel C();

                [Attention(MaskMod = {|XFA0015:""|})]
                public static partial AttentionKernel D();

                static bool Over({{Mask}}) => true;
                static bool Over({{Mask}}, int extra) => true;
                static float NotAMethod = 1f;

                [Attention(ScoreMod = null)]
                public static partial AttentionKernel Sibling();
            }
            """);
        Messages(run).First().ShouldBe("ScoreMod = \"Missing\" names no method of 'Kernels'; name one static method of 'Kernels' with nameof, like 'ScoreMod = nameof(MyMod)'");
        Messages(run).ElementAt(1).ShouldBe("MaskMod = \"Over\" names 2 overloads; name one static method of 'Kernels' with nameof, like 'MaskMod = nameof(MyMod)'");
    }

    [Fact]
    public void XFA0016_ModSignature_OnTheMethodNameReturnTypeOrParameter()
    {
        var run = Verify($$"""
            public struct A { public int W; }

            public partial class Kernels
            {
                [Attention(ScoreMod = nameof(NotStatic))] public static partial AttentionKernel V1();
                float {|XFA0016:NotStatic|}({{Score}}) => score;

                [Attention(ScoreMod = nameof(Generic))] public static partial AttentionKernel V2();
                static float {|XFA0016:Generic|}<T>({{Score}}) => score;

                [Attention(MaskMod = nameof(Returns))] public static partial AttentionKernel V3();
                static {|XFA0016:float|} Returns({{Mask}}) => 0f;

                [Attention(MaskMod = nameof(Few))] public static partial AttentionKernel V4();
                static bool Few{|XFA0016:(int batch, int head)|} => true;

                [Attention(ScoreMod = nameof(Typed))] public static partial AttentionKernel V5();
                static float Typed(float score, {|XFA0016:long batch|}, int head, int q, int kv) => score;

                [Attention(MaskMod = nameof(ByRef))] public static partial AttentionKernel V6();
                static bool ByRef({{Mask}}, {|XFA0016:ref A args|}) => true;

                [Attention(MaskMod = nameof(NotAStruct))] public static partial AttentionKernel V7();
                static bool NotAStruct({{Mask}}, {|XFA0016:in string args|}) => true;

                [Attention(ScoreMod = nameof(Fine))] public static partial AttentionKernel Sibling();
                static float Fine({{Score}}, A args) => score + args.W;
            }
            """);
        Messages(run).First().ShouldBe(
            "Mod 'NotStatic' is not static; declare it as 'static float NotStatic(float score, int batch, int head, int q, int kv)', optionally with a trailing 'in TArgs args'");
        Messages(run).ElementAt(2).ShouldBe(
            "Mod 'Returns' returns 'float'; declare it as 'static bool Returns(int batch, int head, int q, int kv)', optionally with a trailing 'in TArgs args'");
    }

    [Fact]
    public void XFA0017_ModWithoutBody_OnTheMethodName()
    {
        var run = Verify($$"""
            public static partial class Kernels
            {
                [Attention(ScoreMod = nameof(Declared))] public static partial AttentionKernel V1();
                private static partial float {|XFA0017:Declared|}({{Score}});

                [Attention(MaskMod = nameof(External))] public static partial AttentionKernel V2();
                static extern bool {|XFA0017:External|}({{Mask}});

                [Attention(MaskMod = nameof(Implemented))] public static partial AttentionKernel Sibling();
                private static partial bool Implemented({{Mask}});
                private static partial bool Implemented({{Mask}}) => q >= kv;
            }
            """);
        Messages(run).First().ShouldBe("Mod 'Declared' has no body to compile; give it an expression body or a block body in the declaring type");
    }

    [Fact]
    public void XFA0018_ModInOtherFile_OnTheReference()
    {
        var run = Verify($$"""
            public static partial class Kernels
            {
                [Attention(ScoreMod = {|XFA0018:nameof(Far)|})] public static partial AttentionKernel V1();

                [Attention(MaskMod = nameof(FarArgs))] public static partial AttentionKernel V2();
                static bool FarArgs({{Mask}}, in {|XFA0018:Elsewhere|} args) => true;

                [Attention(ScoreMod = nameof(FarConstant))] public static partial AttentionKernel V3();
                static float FarConstant({{Score}}) => score * {|XFA0018:Constants.Cap|};

                [Attention(ScoreMod = nameof(Near))] public static partial AttentionKernel Sibling();
                static float Near({{Score}}) => score * System.MathF.PI;
            }
            """,
            $$"""
            public static partial class Kernels
            {
                static float Far({{Score}}) => score;
            }

            public struct Elsewhere { public int W; }

            public static class Constants { public const float Cap = 30f; }
            """);
        Messages(run).First().ShouldBe(
            "Mod 'Far' is declared in another file than 'ScoreMod'; move it into the file that declares 'ScoreMod', so an edit to it rebuilds the kernels");
    }

    [Fact]
    public void XFA0019_ModUnsupported_OnTheOffendingNode()
    {
        var run = Verify($$"""
            public struct A { public int W; public Tensor<int> T; }

            public static partial class Kernels
            {
                static float field = 2f;
                static float Property => 2f;

                [Attention(ScoreMod = nameof(Loop))] public static partial AttentionKernel V1();
                static float Loop({{Score}}) { {|XFA0019:for (int i = 0; i < 3; i++) { }|} return score; }

                [Attention(ScoreMod = nameof(Assign))] public static partial AttentionKernel V2();
                static float Assign({{Score}}) { float x = score; {|XFA0019:x = 2f|}; return x; }

                [Attention(ScoreMod = nameof(Increment))] public static partial AttentionKernel V3();
                static float Increment({{Score}}) { {|XFA0019:q++|}; return score; }

                [Attention(ScoreMod = nameof(Compound))] public static partial AttentionKernel V4();
                static float Compound({{Score}}) { {|XFA0019:score *= 2f|}; return score; }

                [Attention(MaskMod = nameof(FieldWrite))] public static partial AttentionKernel V5();
                static bool FieldWrite({{Mask}}, A args) { {|XFA0019:args.W = 3|}; return true; }

                [Attention(ScoreMod = nameof(New))] public static partial AttentionKernel V6();
                static float New({{Score}}) => {|XFA0019:new float[] { score }|}[0];

                [Attention(ScoreMod = nameof(Lambda))] public static partial AttentionKernel V7();
                static float Lambda({{Score}}) { System.Func<float> f = {|XFA0019:() => score|}; return score; }

                [Attention(MaskMod = nameof(Throw))] public static partial AttentionKernel V8();
                static bool Throw({{Mask}}) => q >= 0 ? true : {|XFA0019:throw new System.Exception()|};

                [Attention(ScoreMod = nameof(Sin))] public static partial AttentionKernel V9();
                static float Sin({{Score}}) => {|XFA0019:MathF.Sin(score)|};

                [Attention(ScoreMod = nameof(Power))] public static partial AttentionKernel V10();
                static float Power({{Score}}) => MathF.Pow(2f, {|XFA0019:score|});

                [Attention(ScoreMod = nameof(StaticField))] public static partial AttentionKernel V11();
                static float StaticField({{Score}}) => score * {|XFA0019:field|};

                [Attention(ScoreMod = nameof(ReadsProperty))] public static partial AttentionKernel V12();
                static float ReadsProperty({{Score}}) => score * {|XFA0019:Property|};

                [Attention(ScoreMod = nameof(Double))] public static partial AttentionKernel V13();
                static float Double({{Score}}) => (float)({|XFA0019:score * 0.5|});

                [Attention(MaskMod = nameof(Strings))] public static partial AttentionKernel V14();
                static bool Strings({{Mask}}) => {|XFA0019:"a" + q|} == "a1";

                [Attention(MaskMod = nameof(WholeTable))] public static partial AttentionKernel V15();
                static bool WholeTable({{Mask}}, in A args) => {|XFA0019:args.T|} != null;

                [Attention(MaskMod = nameof(Helper))] public static partial AttentionKernel V16();
                static bool Helper({{Mask}}) => {|XFA0019:Fine(1f, 0, 0, q, kv)|} > 0f;

                [Attention(ScoreMod = nameof(Fine))] public static partial AttentionKernel Sibling();
                static float Fine({{Score}}) => score;
            }
            """);
        Messages(run).First().ShouldBe(
            "'for (int i = 0; i < 3; i++) { }' is not supported in mod 'Loop': loops: a mod runs once per score; write the result as a formula, or precompute it into a table of the arguments");
        Messages(run).Single(m => m.Contains("'score' is not supported in mod 'Power'")).ShouldBe(
            "'score' is not supported in mod 'Power': MathF.Pow takes a constant exponent here; for a run-time one write MathF.Exp(y * MathF.Log(x))");
    }

    [Fact]
    public void XFA0020_ModArgsFieldType_OnTheField()
    {
        var run = Verify($$"""
            public struct A { public int W; public long {|XFA0020:Big|}; public double {|XFA0020:Precise|}; public Tensor<long> {|XFA0020:Wide|}; }

            public static partial class Kernels
            {
                [Attention(MaskMod = nameof(M))] public static partial AttentionKernel V();
                static bool M({{Mask}}, in A args) => q - kv < args.W;

                [Attention(MaskMod = nameof(Fine))] public static partial AttentionKernel Sibling();
                static bool Fine({{Mask}}) => true;
            }
            """);
        Messages(run).First().ShouldBe("Field 'Big' of 'A' has type 'long'; mod arguments are int, bool, float, Tensor<int> or Tensor<float> fields");
    }

    [Fact]
    public void XFA0021_ModArgsTooMany_OnTheFirstFieldPastTheSlots()
    {
        var run = Verify($$"""
            public struct A
            {
                public int I0, I1, I2, I3, I4, I5, I6;
                public bool B7;
                public bool {|XFA0021:B8|};
                public int I9;
                public Tensor<float> F0, F1, F2, F3, {|XFA0021:F4|};
            }

            public static partial class Kernels
            {
                [Attention(MaskMod = nameof(M))] public static partial AttentionKernel V();
                static bool M({{Mask}}, in A args) => q - kv < args.I0;

                [Attention(MaskMod = nameof(Fine))] public static partial AttentionKernel Sibling();
                static bool Fine({{Mask}}) => true;
            }
            """);
        Messages(run).First().ShouldBe(
            "Field 'B8' of 'A' is one int or bool field too many: the kernels have 8 int slots, shared by int and bool fields; pack the values into a table (Tensor<int> or Tensor<float>)");
    }

    [Fact]
    public void XFA0022_ModArgsMismatch_OnTheMaskModsArgumentType()
    {
        var run = Verify($$"""
            public struct A { public int W; }
            public struct B { public int W; }

            public static partial class Kernels
            {
                [Attention(ScoreMod = nameof(S), MaskMod = nameof(M))] public static partial AttentionKernel V();
                static float S({{Score}}, in A args) => score + args.W;
                static bool M({{Mask}}, in {|XFA0022:B|} args) => q - kv < args.W;

                [Attention(ScoreMod = nameof(S), MaskMod = nameof(Plain))] public static partial AttentionKernel Sibling();
                static bool Plain({{Mask}}) => true;
            }
            """);
        Messages(run).Single().ShouldBe("Mod 'M' takes 'B' but mod 'S' takes 'A'; both mods of a variant take the same argument struct");
    }

    [Fact]
    public void XFA0023_ModTableRank_OnTheSecondIndexing()
    {
        var run = Verify($$"""
            public struct A { public Tensor<int> T; }

            public static partial class Kernels
            {
                [Attention(ScoreMod = nameof(S), MaskMod = nameof(M))] public static partial AttentionKernel V();
                static float S({{Score}}, in A args) => score + args.T[q];
                static bool M({{Mask}}, in A args) => {|XFA0023:args.T[q, kv]|} != 0;

                [Attention(ScoreMod = nameof(S))] public static partial AttentionKernel Sibling();
            }
            """);
        Messages(run).Single().ShouldBe("Table 'T' is indexed with 2 index(es) here and 1 elsewhere; index each table with one rank (1 to 3) everywhere");
    }

    private static IEnumerable<string> Messages(GeneratorRun run) =>
        run.Diagnostics.OrderBy(d => d.Location.SourceSpan.Start).Select(d => d.GetMessage(CultureInfo.InvariantCulture));

    /// <summary>
    /// Runs the generator over <paramref name="markup"/> (the first file) and <paramref name="others"/>, checks the mod
    /// diagnostics' IDs and spans in source order, and that only the variants named Sibling got kernels: a declaration
    /// with a mod error gets the stand-in body.
    /// </summary>
    private static GeneratorRun Verify(string markup, params string[] others)
    {
        var expected = DiagnosticMarkup.Parse(GeneratorHarness.Usings + "using System;\n\n" + markup);
        var sources = new[] { expected.Source }.Concat(others.Select(o => GeneratorHarness.Usings + o)).Concat(ModTestSupport.TensorStandIn).ToArray();
        var run = GeneratorHarness.Run(sources).ShouldNotHaveThrown();
        var diagnostics = run.Diagnostics.OrderBy(d => d.Location.SourceSpan.Start).ToList();
        diagnostics.Select(DiagnosticMarkup.Describe).ShouldBe(expected.Expected);
        diagnostics.ShouldAllBe(d => d.Severity == DiagnosticSeverity.Error);

        var variants = run.Sources.Where(s => !s.Key.EndsWith(".XFormersRegistry.g.cs", StringComparison.Ordinal) && !GeneratorHarness.IsStub(s.Value))
            .Select(s => s.Key).ToList();
        variants.ShouldBe(new[] { "Kernels.Sibling.g.cs" });
        return run;
    }
}
