namespace XFormers.Tests.Generator;

/// <summary>
/// The generator never throws: whatever the declaration, it reports a diagnostic or leaves the error to the
/// compiler, and its other files still come out. A throw would show as CS8785 and drop every generated file.
/// </summary>
public class GeneratorRobustnessTests
{
    public static TheoryData<string, string> Garbage => new()
    {
        { "invalid enum casts", "public static partial class K { [Attention(Mask = (MaskKind)99, Bias = (BiasKind)(-5), DType = (DType)int.MaxValue)] public static partial AttentionKernel A(); }" },
        { "missing argument value", "public static partial class K { [Attention(HeadDim = )] public static partial AttentionKernel A(); }" },
        { "missing closing parenthesis", "public static partial class K { [Attention(HeadDim = 64] public static partial AttentionKernel A(); }" },
        { "positional argument", "public static partial class K { [Attention(64)] public static partial AttentionKernel A(); }" },
        { "argument of the wrong type", "public static partial class K { [Attention(HeadDim = \"64\", Backward = 1)] public static partial AttentionKernel A(); }" },
        { "non-constant argument", "public static partial class K { static int Size = 64; [Attention(HeadDim = Size)] public static partial AttentionKernel A(); }" },
        { "unknown property", "public static partial class K { [Attention(Heads2 = 3)] public static partial AttentionKernel A(); }" },
        { "argument given twice", "public static partial class K { [Attention(HeadDim = 32, HeadDim = 50)] public static partial AttentionKernel A(); }" },
        { "attribute given twice", "public static partial class K { [Attention, Attention(HeadDim = 50)] public static partial AttentionKernel A(); }" },
        { "attribute on a class", "[Attention] public static partial class K { }" },
        { "attribute on a property", "public static partial class K { [Attention] public static AttentionKernel P => null!; }" },
        { "attribute on a field", "public static partial class K { [Attention] public static AttentionKernel F = null!; }" },
        { "attribute on a parameter", "public static partial class K { public static void M([Attention] int x) { } }" },
        { "attribute on a return value", "public static partial class K { [return: Attention] public static partial AttentionKernel A(); }" },
        { "attribute on a local function", "public static partial class K { static void M() { [Attention] static AttentionKernel A() => null!; } }" },
        { "attribute on a lambda", "public static partial class K { static System.Func<AttentionKernel> F = [Attention] () => null!; }" },
        { "attribute on an enum member", "public enum E { [Attention] A }" },
        { "method in a namespace", "namespace N { [Attention] public static partial AttentionKernel A(); }" },
        { "method at top level", "[Attention] public static partial AttentionKernel A();" },
        { "method without a name", "public static partial class K { [Attention] public static partial AttentionKernel (); }" },
        { "method without a return type", "public static partial class K { [Attention] public static partial A(); }" },
        { "unclosed parameter list", "public static partial class K { [Attention] public static partial AttentionKernel A( }" },
        { "unclosed type", "public static partial class K { [Attention] public static partial AttentionKernel A();" },
        { "unknown return type", "public static partial class K { [Attention] public static partial Missing A(); }" },
        { "interface member without accessibility", "public partial interface I { [Attention] static partial AttentionKernel A(); }" },
        { "generic and non-static and with parameters", "public partial class G<T> { [Attention(HeadDim = 7, BlockM = 3)] partial AttentionKernel A<U>(U u); }" },
        { "lookalike attribute", "namespace Other { public sealed class AttentionAttribute : System.Attribute { } } public static partial class K { [Other.Attention] public static partial AttentionKernel A(); }" },
    };

    [Theory]
    [MemberData(nameof(Garbage))]
    public void GarbageNeverMakesTheGeneratorThrow(string name, string source)
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + source).ShouldNotHaveThrown();

        run.Diagnostics.ShouldNotContain(d => d.Id == "XFA0099", name);
    }

    [Fact]
    public void MethodOutsideAnyTypeGeneratesNothing()
    {
        var run = GeneratorHarness.Run(
            GeneratorHarness.Usings + "namespace N { [Attention] public static partial AttentionKernel A(); }",
            GeneratorHarness.Usings + "public static partial class K { [Attention] public static partial AttentionKernel B(); }").ShouldNotHaveThrown();

        run.Diagnostics.ShouldBeEmpty();
        run.Output.GetDiagnostics().ShouldContain(d => d.Id == "CS0116");
        run.Sources.Keys.OrderBy(h => h, StringComparer.Ordinal).ShouldBe(new[] { "K.B.g.cs", "K.XFormersRegistry.g.cs" });
    }

    /// <summary>Hint names are compared ignoring case; the generator numbers clashes instead of throwing.</summary>
    [Fact]
    public void HintNamesThatDifferOnlyInCaseOrMatchTheRegistryAreNumbered()
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + """
            public static partial class K
            {
                [Attention(Mask = MaskKind.Causal)]
                public static partial AttentionKernel A();

                [Attention]
                public static partial AttentionKernel a();

                [Attention(HeadDim = 32)]
                public static partial AttentionKernel XFormersRegistry();
            }
            """).ShouldNotHaveThrown();

        run.OutputErrors.ShouldBeEmpty();
        run.Sources.Keys.OrderBy(h => h, StringComparer.Ordinal).ShouldBe(new[]
        {
            "K.A.g.cs",
            "K.XFormersRegistry.2.g.cs",
            "K.XFormersRegistry.g.cs",
            "K.a.2.g.cs",
        });
        run.Sources["K.XFormersRegistry.g.cs"].ShouldContain("AttentionRegistry.Register(XFormersRegistry());");
    }

    /// <summary>A nested type keeps '+' in its hint name, so it cannot meet a namespace of the same dotted name.</summary>
    [Fact]
    public void NestedTypesAndNamespacesGetDistinctHintNames()
    {
        var run = GeneratorHarness.Run(
            GeneratorHarness.Usings + "namespace N.A { public static partial class B { [Attention] public static partial AttentionKernel M(); } }",
            GeneratorHarness.Usings + "namespace N { public static partial class C { public static partial class B { [Attention] public static partial AttentionKernel M(); } } }")
            .ShouldNotHaveThrown();

        run.OutputErrors.ShouldBeEmpty();
        run.Sources.Keys.OrderBy(h => h, StringComparer.Ordinal).ShouldBe(new[]
        {
            "N.A.B.M.g.cs",
            "N.A.B.XFormersRegistry.g.cs",
            "N.C+B.M.g.cs",
            "N.C+B.XFormersRegistry.g.cs",
        });
    }

    /// <summary>A method declared twice is the compiler's error (CS0111); the generator emits it once.</summary>
    [Fact]
    public void MethodDeclaredTwiceIsEmittedOnce()
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + """
            public static partial class K
            {
                [Attention]
                public static partial AttentionKernel A();

                [Attention(HeadDim = 32)]
                public static partial AttentionKernel A();
            }
            """).ShouldNotHaveThrown();

        run.Output.GetDiagnostics().ShouldContain(d => d.Id == "CS0111");
        run.Sources.Keys.OrderBy(h => h, StringComparer.Ordinal).ShouldBe(new[] { "K.A.g.cs", "K.XFormersRegistry.g.cs" });
        run.Sources["K.A.g.cs"].ShouldContain("public const int HeadDim = 64;");
    }

    [Fact]
    public void KeywordIdentifiersStayEscapedInCodeAndPlainInNames()
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + """
            namespace @event.Handlers
            {
                public static partial class @class
                {
                    [Attention]
                    public static partial AttentionKernel @void();
                }
            }
            """).ShouldNotHaveThrown();

        run.OutputErrors.ShouldBeEmpty();
        run.Sources.Keys.OrderBy(h => h, StringComparer.Ordinal).ShouldBe(new[]
        {
            "event.Handlers.class.XFormersRegistry.g.cs",
            "event.Handlers.class.void.g.cs",
        });
        var variant = run.Sources["event.Handlers.class.void.g.cs"];
        variant.ShouldContain("namespace @event.Handlers;");
        variant.ShouldContain("partial class @class");
        variant.ShouldContain("public static partial global::XFormers.AttentionKernel @void() => __XFormers_void.Kernel;");
        variant.ShouldContain("Name: \"event.Handlers.class.void\",");
        run.Sources["event.Handlers.class.XFormersRegistry.g.cs"].ShouldContain("AttentionRegistry.Register(@void());");
    }
}
