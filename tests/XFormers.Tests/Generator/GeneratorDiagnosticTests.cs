using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;

namespace XFormers.Tests.Generator;

/// <summary>
/// One test per XFA diagnostic: the ID on exactly the offending text ({|XFA....:text|} marks it), the message the
/// user reads, and what is generated: nothing for a wrong declaration, its valid siblings as usual.
/// </summary>
public class GeneratorDiagnosticTests
{
    [Fact]
    public void XFA0001_MethodNotStaticPartial_OnTheMethodName()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention]
                public partial AttentionKernel {|XFA0001:NotStatic|}();

                [Attention]
                public static AttentionKernel {|XFA0001:NotPartial|}() => null!;

                [Attention]
                public static partial AttentionKernel {|XFA0001:WithBody|}();
                public static partial AttentionKernel WithBody() => null!;

                [Attention]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "Attention method 'NotStatic' must be declared 'static partial' with no body, like 'public static partial AttentionKernel NotStatic()'",
                "Attention method 'NotPartial' must be declared 'static partial' with no body, like 'public static partial AttentionKernel NotPartial()'",
                "Attention method 'WithBody' must be declared 'static partial' with no body, like 'public static partial AttentionKernel WithBody()'",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0002_TypeNotPartialOrNotVisible_OnTheTypeName()
    {
        Verify("""
            public static class {|XFA0002:NotPartial|}
            {
                [Attention]
                public static partial AttentionKernel A();
            }

            public static partial class Outer
            {
                private static partial class {|XFA0002:Hidden|}
                {
                    // Internal itself: only the private type around it is reported.
                    internal static partial class Inner
                    {
                        [Attention]
                        public static partial AttentionKernel B();
                    }
                }
            }

            public partial class Base
            {
                protected partial class {|XFA0002:Guarded|}
                {
                    [Attention]
                    public static partial AttentionKernel C();
                }
            }

            file static partial class {|XFA0002:FileLocal|}
            {
                [Attention]
                public static partial AttentionKernel D();
            }

            public static partial class Kernels
            {
                [Attention]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "Type 'NotPartial' must be declared 'partial', and neither 'private', 'protected' nor 'file', so the generator can add the kernels and register them at load (add 'partial')",
                "Type 'Hidden' must be declared 'partial', and neither 'private', 'protected' nor 'file', so the generator can add the kernels and register them at load (make it internal or public)",
                "Type 'Guarded' must be declared 'partial', and neither 'private', 'protected' nor 'file', so the generator can add the kernels and register them at load (make it internal or public)",
                "Type 'FileLocal' must be declared 'partial', and neither 'private', 'protected' nor 'file', so the generator can add the kernels and register them at load (remove 'file': the generated half lives in another file)",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0003_WrongReturnType_OnTheReturnType()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention]
                public static partial {|XFA0003:int|} Number();

                [Attention]
                public static partial {|XFA0003:AttentionKernel<float>|} Typed();

                [Attention]
                public static partial {|XFA0003:AttentionKernel?|} Nullable();

                [Attention]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "Attention method 'Number' returns 'int'; declare it as returning 'XFormers.AttentionKernel'",
                "Attention method 'Typed' returns 'XFormers.AttentionKernel<float>'; declare it as returning 'XFormers.AttentionKernel'",
                "Attention method 'Nullable' returns 'XFormers.AttentionKernel?'; declare it as returning 'XFormers.AttentionKernel'",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0004_UnsupportedHeadDim_OnTheArgument()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.Causal, {|XFA0004:HeadDim = 50|})]
                public static partial AttentionKernel NotMultipleOf8();

                [Attention({|XFA0004:HeadDim = 0|})]
                public static partial AttentionKernel Zero();

                [Attention({|XFA0004:HeadDim = 512|}, DType = DType.Float32)]
                public static partial AttentionKernel TooWide();

                // 48 is a multiple of 8: fine.
                [Attention(HeadDim = 48)]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "HeadDim = 50 is not supported; use a multiple of 8 from 8 to 256 (for example 32, 64 or 128)",
                "HeadDim = 0 is not supported; use a multiple of 8 from 8 to 256 (for example 32, 64 or 128)",
                "HeadDim = 512 is not supported; use a multiple of 8 from 8 to 256 (for example 32, 64 or 128)",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0005_InvalidTileSize_OnTheArgument()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention(HeadDim = 64, {|XFA0005:BlockM = 48|})]
                public static partial AttentionKernel NotPowerOfTwo();

                [Attention({|XFA0005:BlockN = 256|})]
                public static partial AttentionKernel TooLarge();

                [Attention({|XFA0005:BlockM = 8|}, {|XFA0005:BlockN = -16|})]
                public static partial AttentionKernel BothTooSmall();

                [Attention(BlockM = 16, BlockN = 0)]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "BlockM = 48 is not a valid tile size; use a power of two from 16 to 128, or 0 to let the generator pick one for the head dim",
                "BlockN = 256 is not a valid tile size; use a multiple of 16 from 16 to 128, or 0 to let the generator pick one for the head dim",
                "BlockM = 8 is not a valid tile size; use a power of two from 16 to 128, or 0 to let the generator pick one for the head dim",
                "BlockN = -16 is not a valid tile size; use a multiple of 16 from 16 to 128, or 0 to let the generator pick one for the head dim",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0006_TilesDoNotDivide_OnBlockN()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention(HeadDim = 64, BlockM = 64, {|XFA0006:BlockN = 48|})]
                public static partial AttentionKernel FortyEightIntoSixtyFour();

                [Attention(HeadDim = 32, BlockM = 32, {|XFA0006:BlockN = 80|})]
                public static partial AttentionKernel EightyOverThirtyTwo();

                [Attention(HeadDim = 32, BlockM = 16, BlockN = 48)]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "BlockM = 64 and BlockN = 48 do not divide each other; the larger tile must be a multiple of the smaller, so a causal diagonal falls on whole tiles",
                "BlockM = 32 and BlockN = 80 do not divide each other; the larger tile must be a multiple of the smaller, so a causal diagonal falls on whole tiles",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0007_SharedMemoryBudget_OnBlockN()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention(HeadDim = 64, {|XFA0007:BlockN = 128|})]
                public static partial AttentionKernel K64();

                [Attention(HeadDim = 256, {|XFA0007:BlockN = 32|}, DType = DType.Float32)]
                public static partial AttentionKernel K256();

                // The defaults always fit: BlockN = 16 for K = 256 (32 KB).
                [Attention(HeadDim = 256)]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "BlockN = 128 with HeadDim = 64 needs 65536 bytes of shared memory per group for the K and V tiles; the budget is 49152 bytes: use BlockN = 64 or smaller",
                "BlockN = 32 with HeadDim = 256 needs 65536 bytes of shared memory per group for the K and V tiles; the budget is 49152 bytes: use BlockN = 16 or smaller",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0008_InvalidGrouping_OnTheArgument()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention({|XFA0008:Heads = -1|})]
                public static partial AttentionKernel NegativeHeads();

                [Attention(Heads = 8, {|XFA0008:KvHeads = -2|})]
                public static partial AttentionKernel NegativeKvHeads();

                [Attention({|XFA0008:KvHeads = 2|})]
                public static partial AttentionKernel KvHeadsWithoutHeads();

                [Attention(Heads = 8, {|XFA0008:KvHeads = 3|})]
                public static partial AttentionKernel NotDividing();

                [Attention(Heads = 8, KvHeads = 2)]
                public static partial AttentionKernel Sibling();

                [Attention(Heads = 6)]
                public static partial AttentionKernel FixedHeads();
            }
            """,
            messages: new[]
            {
                "Heads = -1 must be positive, or 0 for any head count",
                "KvHeads = -2 must be positive, or 0 to read the grouping from the tensors",
                "KvHeads = 2 needs Heads, the number of query heads it groups (for example Heads = 8)",
                "KvHeads = 3 does not divide Heads = 8; each KV head must serve the same number of query heads",
            },
            generated: new[] { "Kernels.FixedHeads", "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0009_ConflictingOptions_OnBiasGradient()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention(Bias = BiasKind.Alibi, {|XFA0009:BiasGradient = true|})]
                public static partial AttentionKernel AlibiGradient();

                [Attention({|XFA0009:BiasGradient = true|})]
                public static partial AttentionKernel NoBiasGradient();

                [Attention(Bias = BiasKind.Tensor, {|XFA0009:BiasGradient = true|}, Backward = false)]
                public static partial AttentionKernel GradientWithoutBackward();

                [Attention(Bias = BiasKind.Tensor, BiasGradient = true)]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "BiasGradient = true needs Bias = BiasKind.Tensor (this variant has Bias = BiasKind.Alibi, which has no gradient)",
                "BiasGradient = true needs Bias = BiasKind.Tensor (this variant has Bias = BiasKind.None, which has no gradient)",
                "BiasGradient = true needs Backward = true: the bias gradient is written by the backward kernels",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0010_GenericNotSupported_OnTheMethodOrTypeName()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention]
                public static partial AttentionKernel {|XFA0010:PerElement|}<T>();

                [Attention]
                public static partial AttentionKernel Sibling();
            }

            public partial class {|XFA0010:Box|}<T>
            {
                [Attention]
                public static partial AttentionKernel Inside();
            }
            """,
            messages: new[]
            {
                "'PerElement' is generic; declare attention variants as non-generic methods of non-generic types",
                "'Box' is generic; declare attention variants as non-generic methods of non-generic types",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0011_MethodHasParameters_OnTheParameterList()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention]
                public static partial AttentionKernel WithHeads{|XFA0011:(int heads)|};

                [Attention]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "Attention method 'WithHeads' must take no parameters; inputs go to the returned kernel's Forward and Backward",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0012_UnknownEnumValue_OnTheArgument()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention({|XFA0012:Mask = (MaskKind)17|}, {|XFA0012:Bias = (BiasKind)3|})]
                public static partial AttentionKernel MaskAndBias();

                [Attention({|XFA0012:DType = (DType)(-1)|})]
                public static partial AttentionKernel Element();

                [Attention(Mask = (MaskKind)4)]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "Mask = 17 is not a defined MaskKind value; use one of: None, Causal, CausalFromBottomRight, BlockDiagonal, BlockDiagonalCausal, " +
                "CausalLocalFromBottomRight, BlockDiagonalCausalFromBottomRight, BlockDiagonalCausalLocal, BlockDiagonalCausalLocalFromBottomRight",
                "Bias = 3 is not a defined BiasKind value; use one of: None, Tensor, Alibi",
                "DType = -1 is not a defined DType value; use one of: Float32, Float16, BFloat16",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0001_Extern_OnTheMethodName()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention]
                public static extern partial AttentionKernel {|XFA0001:External|}();

                [Attention]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "Attention method 'External' must be declared 'static partial' with no body, like 'public static partial AttentionKernel External()'",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0003_UnresolvableReturnType_OnTheReturnType()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention]
                public static partial {|XFA0003:AttentionKernal|} Misspelt();

                [Attention]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "Attention method 'Misspelt' returns 'AttentionKernal'; declare it as returning 'XFormers.AttentionKernel'",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0013_ReturnsByReference_OnTheReturnType()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention]
                public static partial {|XFA0013:ref AttentionKernel|} ByRef();

                [Attention]
                public static partial {|XFA0013:ref readonly AttentionKernel|} ByReadOnlyRef();

                [Attention]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "Attention method 'ByRef' returns 'XFormers.AttentionKernel' by reference; remove 'ref' and return 'XFormers.AttentionKernel' by value",
                "Attention method 'ByReadOnlyRef' returns 'XFormers.AttentionKernel' by reference; remove 'ref readonly' and return 'XFormers.AttentionKernel' by value",
            },
            generated: new[] { "Kernels.Sibling" });
    }

    [Fact]
    public void XFA0014_ReservedName_OnTheMember()
    {
        Verify("""
            public static partial class Kernels
            {
                [Attention]
                public static partial AttentionKernel First();

                [Attention]
                public static partial AttentionKernel Second();

                private static class {|XFA0014:__XFormers_First|} { }

                internal static int {|XFA0014:__XFormers_Counter|};
            }

            public static partial class Clean
            {
                [Attention]
                public static partial AttentionKernel Sibling();
            }
            """,
            messages: new[]
            {
                "'__XFormers_First' starts with '__XFormers_', which the attention generator reserves for the members it adds to 'Kernels'; rename it",
                "'__XFormers_Counter' starts with '__XFormers_', which the attention generator reserves for the members it adds to 'Kernels'; rename it",
            },
            generated: new[] { "Clean.Sibling" });
    }

    // XFA0099 (internal error) has no test that triggers it: no declaration reaches it honestly. The parser turns an
    // exception into XFA0099, but every input that used to throw (methods outside a type, clashing or invalid hint
    // names) is now handled on purpose; the emitter turns a template or AddSource failure into XFA0099, but the
    // templates are embedded resources every snapshot test renders, and hint names are valid by construction.
    // Forcing it would take a test hook in the generator. GeneratorRobustnessTests checks the other half: garbage
    // input never makes the generator throw and never ends in XFA0099.

    /// <summary>
    /// Runs the generator over <paramref name="markup"/> and checks the diagnostics (ID and line/column span, in source
    /// order), their messages, that exactly the <paramref name="generated"/> variants ("Type.Method") got a file
    /// and a line in their type's dispatch table, and that no generated file (stand-in bodies included) has an error.
    /// </summary>
    private static void Verify(string markup, string[] messages, string[] generated)
    {
        var expected = DiagnosticMarkup.Parse(GeneratorHarness.Usings + markup);
        var run = GeneratorHarness.Run(expected.Source).ShouldNotHaveThrown();

        var diagnostics = run.Diagnostics.OrderBy(d => d.Location.SourceSpan.Start).ToList();
        diagnostics.Select(DiagnosticMarkup.Describe).ShouldBe(expected.Expected);
        diagnostics.Select(d => d.GetMessage(CultureInfo.InvariantCulture)).ShouldBe(messages);
        diagnostics.ShouldAllBe(d => d.Severity == DiagnosticSeverity.Error);

        run.OutputErrors.Where(d => d.Location.SourceTree?.FilePath.EndsWith(".g.cs", StringComparison.Ordinal) == true)
            .Select(d => d.ToString()).ShouldBeEmpty();

        var variantFiles = run.Sources.Where(s => !s.Key.EndsWith(".XFormersRegistry.g.cs", StringComparison.Ordinal) && !GeneratorHarness.IsStub(s.Value)).Select(s => s.Key);
        variantFiles.OrderBy(h => h, StringComparer.Ordinal).ShouldBe(generated.Select(g => g + ".g.cs").OrderBy(h => h, StringComparer.Ordinal));
        Registered(run).ShouldBe(generated.OrderBy(g => g, StringComparer.Ordinal));
    }

    /// <summary>"Type.Method" for every Register(Method()) line of every generated dispatch table.</summary>
    private static IEnumerable<string> Registered(GeneratorRun run) =>
        run.Sources
            .Where(s => s.Key.EndsWith(".XFormersRegistry.g.cs", StringComparison.Ordinal))
            .SelectMany(s => Regex.Matches(s.Value, @"Register\((\w+)\(\)\)")
                .Select(m => s.Key[..^".XFormersRegistry.g.cs".Length] + "." + m.Groups[1].Value))
            .OrderBy(name => name, StringComparer.Ordinal);
}
