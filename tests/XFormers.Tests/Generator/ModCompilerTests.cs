extern alias Generators;

using System.IO;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Generators::XFormers.Generators.Models;
using Generators::XFormers.Generators.Mods;

namespace XFormers.Tests.Generator;

/// <summary>
/// The mods compiler's front half: C# mods lowered to IR (Mods/ModParser.cs), the argument struct's slots, and the C# the
/// kernels get (Mods/ModCSharpWriter.cs), compiled into a stand-alone class and run against the IR evaluator.
/// </summary>
public class ModCompilerTests
{
    private const string Declarations = """
        [Attention(HeadDim = 64, DType = DType.BFloat16, ScoreMod = nameof(Softcap), MaskMod = nameof(Window))]
        public static partial AttentionKernel SoftcapWindow();

        static float Softcap(float score, int batch, int head, int q, int kv) => 30f * MathF.Tanh(score / 30f);
        static bool Window(int batch, int head, int q, int kv) => q >= kv && q - kv < 1024;
        """;

    [Fact]
    public void SoftcapAndWindow()
    {
        var mods = ModTestSupport.Mods(Declarations);
        mods.HasScore.ShouldBeTrue();
        mods.HasMask.ShouldBeTrue();
        mods.ScoreMethod.ShouldBe("Softcap");
        mods.MaskMethod.ShouldBe("Window");
        mods.ScoreBody.ShouldBe(new[] { "return 30f * global::XFormers.Kernels.KernelMath.Tanh(score / 30f);" });
        mods.MaskBody.ShouldBe(new[] { "return q >= kv && q - kv < 1024;" });
        mods.ArgsType.ShouldBe("");
        mods.BindBody.ShouldBeEmpty();
        mods.MaskReadsBatch.ShouldBeFalse();
        mods.MaskReadsHead.ShouldBeFalse();
    }

    private const string DocumentMask = """
        public struct DocArgs { public Tensor<int> DocId; public int Window; public float Cap; public bool Flag; public Tensor<float> Unused; }

        [Attention(MaskMod = nameof(SameDoc))]
        public static partial AttentionKernel DocMask();

        static bool SameDoc(int batch, int head, int q, int kv, in DocArgs args) => args.DocId[q] == args.DocId[kv] && q - kv < args.Window;
        """;

    [Fact]
    public void ArgumentsTakeSlotsInDeclarationOrderAndOnlyReadFieldsAreBound()
    {
        var mods = ModTestSupport.Mods(DocumentMask);
        mods.HasScore.ShouldBeFalse();
        mods.MaskBody.ShouldBe(new[]
        {
            "return global::XFormers.Kernels.ModArgs.Read(a.Mod.IntTable0, q) == global::XFormers.Kernels.ModArgs.Read(a.Mod.IntTable0, kv) && q - kv < a.Mod.Int0;",
        });
        mods.ArgsType.ShouldBe("global::K.DocArgs");
        mods.BindBody.ShouldBe(new[] { "m.IntTable(0, args.DocId, 1, \"DocId\");", "m.Int(0, args.Window);" });
        mods.Fields.ShouldBe(new[]
        {
            new ModField("DocId", ModFieldKind.IntTable, 0, 1, true),
            new ModField("Window", ModFieldKind.Int, 0, 0, true),
            new ModField("Cap", ModFieldKind.Float, 0, 0, false),
            new ModField("Flag", ModFieldKind.Bool, 1, 0, false),
            new ModField("Unused", ModFieldKind.FloatTable, 0, 0, false),
        });
    }

    [Fact]
    public void BindingCoversEveryKind()
    {
        var mods = ModTestSupport.Mods("""
            public struct A { public bool Flag; public float Cap; public Tensor<float> Slopes; public Tensor<int> Grid; public int @checked; }

            [Attention(ScoreMod = nameof(S), MaskMod = nameof(M))]
            public static partial AttentionKernel V();

            static float S(float score, int batch, int head, int q, int kv, A args) => args.Flag ? score * args.Cap + args.Slopes[head, q] : score;
            static bool M(int batch, int head, int q, int kv, in A args) => args.Grid[batch, q, kv] != args.@checked;
            """);
        mods.BindBody.ShouldBe(new[]
        {
            "m.Int(0, args.Flag ? 1 : 0);",
            "m.Float(0, args.Cap);",
            "m.FloatTable(0, args.Slopes, 2, \"Slopes\");",
            "m.IntTable(0, args.Grid, 3, \"Grid\");",
            "m.Int(1, args.@checked);",
        });
        mods.ScoreBody.ShouldBe(new[]
        {
            "return a.Mod.Int0 != 0 ? score * a.Mod.Float0 + global::XFormers.Kernels.ModArgs.Read(a.Mod.FloatTable0, (long)head * a.Mod.FloatTable0Stride0 + q) : score;",
        });
        mods.MaskBody.ShouldBe(new[]
        {
            "return global::XFormers.Kernels.ModArgs.Read(a.Mod.IntTable0, (long)batch * a.Mod.IntTable0Stride0 + (long)q * a.Mod.IntTable0Stride1 + kv) != a.Mod.Int1;",
        });
        mods.MaskReadsBatch.ShouldBeTrue();
        mods.MaskReadsHead.ShouldBeFalse();
    }

    [Fact]
    public void APartialModIsReadFromItsImplementingPart()
    {
        var mods = ModTestSupport.Mods("""
            public struct A { public int W; }

            [Attention(MaskMod = nameof(M))]
            public static partial AttentionKernel V();

            private static partial bool M(int b, int h, int q, int kv, in A args);
            private static partial bool M(int batch, int head, int query, int key, in A arguments) => query - key < arguments.W;
            """);
        mods.MaskBody.ShouldBe(new[] { "return q - kv < a.Mod.Int0;" });
    }

    /// <summary>Every construct the parser takes, in one block body.</summary>
    private const string Everything = """
        public struct Args { public Tensor<int> DocId; public int Window; public float Cap; public bool Flag; public Tensor<float> Slopes; public Tensor<int> Grid; public Tensor<float> Cube; }
        const int Block = 16;

        [Attention(ScoreMod = nameof(Score), MaskMod = nameof(Mask))]
        public static partial AttentionKernel V();

        static float Score(float s, int b, int h, int q, int kv, in Args args)
        {
            const float half = 0.5f;
            float capped = args.Cap * MathF.Tanh(s / args.Cap);
            int distance = Math.Abs(q - kv) / Block;
            if (!args.Flag) return capped;
            var bias = args.Slopes[h] * (kv - q) + (float)args.Grid[q % 4, kv % 4];
            if (distance > args.Window) { return -capped; }
            else if (q % 3 == 0) return MathF.Max(y: bias, x: capped) - half;
            float tail = q > kv ? capped + bias * args.Cube[b, h, 1] : MathF.Pow(MathF.Exp(-capped), 2f) + Math.Min(distance, 3);
            return +tail - -MathF.Sqrt(MathF.Abs(s)) * MathF.Log(1f + MathF.Floor(s * s)) + MathF.Ceiling(s) % 3f + (int)(s * 2f) / 3 + Math.Max(-4, q);
        }

        static bool Mask(int b, int h, int q, int kv, in Args args) =>
            args.DocId[q] == args.DocId[kv] && (q >= kv || args.Flag) && !(q - kv > args.Window == args.Flag) && MathF.Min(args.Cap, 1f) != 0f;
        """;

    [Fact]
    public void EveryConstructLowersToReadableCSharp()
    {
        var mods = ModTestSupport.Mods(Everything);
        mods.ScoreBody.ShouldBe(new[]
        {
            "float m_capped = a.Mod.Float0 * global::XFormers.Kernels.KernelMath.Tanh(score / a.Mod.Float0);",
            "int m_distance = global::System.Math.Abs(q - kv) / 16;",
            "if (!(a.Mod.Int1 != 0)) return m_capped;",
            "float m_bias = global::XFormers.Kernels.ModArgs.Read(a.Mod.FloatTable0, head) * (float)(kv - q) + (float)global::XFormers.Kernels.ModArgs.Read(a.Mod.IntTable1, (long)(q % 4) * a.Mod.IntTable1Stride0 + kv % 4);",
            "if (m_distance > a.Mod.Int0) return -m_capped;",
            "if (q % 3 == 0) return global::XFormers.Kernels.KernelMath.MaxNaN(m_capped, m_bias) - 0.5f;",
            "float m_tail = q > kv ? m_capped + m_bias * global::XFormers.Kernels.ModArgs.Read(a.Mod.FloatTable1, (long)batch * a.Mod.FloatTable1Stride0 + (long)head * a.Mod.FloatTable1Stride1 + 1) : global::XFormers.Kernels.KernelMath.Pow(global::XFormers.Kernels.KernelMath.Exp(-m_capped), 2f) + (float)global::System.Math.Min(m_distance, 3);",
            "return m_tail - -global::XFormers.Kernels.KernelMath.Sqrt(global::XFormers.Kernels.KernelMath.Abs(score)) * global::XFormers.Kernels.KernelMath.Log(1f + global::XFormers.Kernels.KernelMath.Floor(score * score)) + global::XFormers.Kernels.KernelMath.Ceiling(score) % 3f + (float)((int)(score * 2f) / 3) + (float)global::System.Math.Max(-4, q);",
        });
        mods.MaskBody.ShouldBe(new[]
        {
            "return global::XFormers.Kernels.ModArgs.Read(a.Mod.IntTable0, q) == global::XFormers.Kernels.ModArgs.Read(a.Mod.IntTable0, kv) && (q >= kv || a.Mod.Int1 != 0) && !(q - kv > a.Mod.Int0 == (a.Mod.Int1 != 0)) && global::XFormers.Kernels.KernelMath.MinNaN(a.Mod.Float0, 1f) != 0f;",
        });
    }

    [Theory]
    [InlineData(Declarations)]
    [InlineData(DocumentMask)]
    [InlineData(Everything)]
    public void TheWrittenCSharpComputesWhatTheIrDoes(string declarations)
    {
        var mods = ModTestSupport.Mods(declarations);
        var generated = StandAlone.Compile(mods);
        var random = new Random(11);
        for (int trial = 0; trial < 400; trial++)
        {
            var inputs = new ModInputs
            {
                Score = (float)Math.Round(random.NextDouble() * 40 - 20, 3),
                Batch = random.Next(2),
                Head = random.Next(3),
                Q = random.Next(40),
                Kv = random.Next(40),
            };
            for (int i = 0; i < 8; i++)
            {
                inputs.Ints[i] = random.Next(-2, 30);
                inputs.Floats[i] = (float)(random.NextDouble() * 10 + 0.5);
            }
            inputs.Ints[1] = random.Next(2);
            for (int t = 0; t < 4; t++)
            {
                inputs.IntTables[t] = new ModTableValues(Enumerable.Range(0, 30).Select(_ => (double)random.Next(3)).ToArray(), 4, 2);
                inputs.FloatTables[t] = new ModTableValues(Enumerable.Range(0, 30).Select(_ => (double)(float)(random.NextDouble() - 0.5)).ToArray(), 5, 3);
            }

            if (mods.Mask is { } mask)
                generated.Mask(inputs).ShouldBe(ModEvaluator.Evaluate(mask, inputs) != 0, $"mask at trial {trial}");
            if (mods.Score is { } score)
            {
                Close(generated.Score(inputs), ModEvaluator.Evaluate(score, inputs), $"score at trial {trial}");
                Close(generated.ScoreGrad(inputs), ModEvaluator.Evaluate(mods.ScoreGrad!, inputs), $"score gradient at trial {trial}");
            }
        }
    }

    private static void Close(float actual, double expected, string what)
    {
        if (double.IsNaN(expected))
            float.IsNaN(actual).ShouldBeTrue(what);
        else
            Math.Abs(actual - expected).ShouldBeLessThanOrEqualTo(1e-4 * Math.Max(1, Math.Abs(expected)), what);
    }

    /// <summary>
    /// The mod bodies in a class of their own, compiled against stand-ins of ModArgs (arrays for the tables) and KernelMath
    /// (System.Math in double, rounded to float), then run.
    /// </summary>
    private sealed class StandAlone
    {
        private const string Shims = """
            namespace XFormers.Kernels
            {
                public struct ModArgs
                {
                    public int Int0, Int1, Int2, Int3, Int4, Int5, Int6, Int7;
                    public float Float0, Float1, Float2, Float3, Float4, Float5, Float6, Float7;
                    public int[] IntTable0, IntTable1, IntTable2, IntTable3;
                    public long IntTable0Stride0, IntTable0Stride1, IntTable1Stride0, IntTable1Stride1, IntTable2Stride0, IntTable2Stride1, IntTable3Stride0, IntTable3Stride1;
                    public float[] FloatTable0, FloatTable1, FloatTable2, FloatTable3;
                    public long FloatTable0Stride0, FloatTable0Stride1, FloatTable1Stride0, FloatTable1Stride1, FloatTable2Stride0, FloatTable2Stride1, FloatTable3Stride0, FloatTable3Stride1;
                    public static int Read(int[] table, long index) => (ulong)index < (ulong)table.Length ? table[index] : 0;
                    public static float Read(float[] table, long index) => (ulong)index < (ulong)table.Length ? table[index] : float.NaN;
                }

                public static class KernelMath
                {
                    public static float Tanh(float x) => (float)System.Math.Tanh(x);
                    public static float Exp(float x) => (float)System.Math.Exp(x);
                    public static float Log(float x) => (float)System.Math.Log(x);
                    public static float Sqrt(float x) => (float)System.Math.Sqrt(x);
                    public static float Abs(float x) => System.Math.Abs(x);
                    public static float Pow(float x, float y) => (float)System.Math.Pow(x, y);
                    public static float Floor(float x) => System.MathF.Floor(x);
                    public static float Ceiling(float x) => System.MathF.Ceiling(x);
                    public static float MinNaN(float a, float b) => a < b || float.IsNaN(a) ? a : b;
                    public static float MaxNaN(float a, float b) => a > b || float.IsNaN(a) ? a : b;
                }
            }

            public struct Args { public XFormers.Kernels.ModArgs Mod; }
            """;

        private readonly Type args;
        private readonly MethodInfo? score, scoreGrad, mask;

        private StandAlone(Assembly assembly)
        {
            args = assembly.GetType("Args")!;
            var type = assembly.GetType("Mods")!;
            score = type.GetMethod("ModScore");
            scoreGrad = type.GetMethod("ModScoreGrad");
            mask = type.GetMethod("ModMask");
        }

        public static StandAlone Compile(ModsModel mods)
        {
            static string Method(string signature, IEnumerable<string> body) =>
                signature + "\n    {\n" + string.Concat(body.Select(line => "        " + line + "\n")) + "    }\n";
            const string Parameters = "in Args a, float score, int batch, int head, int q, int kv";
            var source = Shims + "\npublic static class Mods\n{\n"
                + (mods.HasScore ? Method($"    public static float ModScore({Parameters})", mods.ScoreBody) : "")
                + (mods.HasScore ? Method($"    public static float ModScoreGrad({Parameters})", mods.ScoreGradBody) : "")
                + (mods.HasMask ? Method("    public static bool ModMask(in Args a, int batch, int head, int q, int kv)", mods.MaskBody) : "")
                + "}\n";
            var frameworkDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
            var references = ((string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? "")
                .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
                .Where(path => Path.GetDirectoryName(path) == frameworkDirectory)
                .Select(path => MetadataReference.CreateFromFile(path));
            var compilation = CSharpCompilation.Create("ModsStandAlone" + Guid.NewGuid().ToString("N"),
                new[] { CSharpSyntaxTree.ParseText(source, GeneratorHarness.ParseOptions) }, references,
                new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
            using var stream = new MemoryStream();
            var emitted = compilation.Emit(stream);
            emitted.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()).ShouldBeEmpty(source);
            var assembly = Assembly.Load(stream.ToArray());
            return new StandAlone(assembly);
        }

        private object MakeArgs(ModInputs inputs)
        {
            var modType = args.GetField("Mod")!.FieldType;
            object modArgs = Activator.CreateInstance(modType)!;
            for (int i = 0; i < 8; i++)
            {
                modType.GetField("Int" + i)!.SetValue(modArgs, inputs.Ints[i]);
                modType.GetField("Float" + i)!.SetValue(modArgs, (float)inputs.Floats[i]);
            }
            foreach (var (kind, tables) in new[] { ("Int", inputs.IntTables), ("Float", inputs.FloatTables) })
            {
                foreach (var (slot, table) in tables)
                {
                    object data = kind == "Int" ? table.Data.Select(v => (int)v).ToArray() : table.Data.Select(v => (float)v).ToArray();
                    modType.GetField($"{kind}Table{slot}")!.SetValue(modArgs, data);
                    modType.GetField($"{kind}Table{slot}Stride0")!.SetValue(modArgs, table.Stride0);
                    modType.GetField($"{kind}Table{slot}Stride1")!.SetValue(modArgs, table.Stride1);
                }
            }
            object value = Activator.CreateInstance(args)!;
            args.GetField("Mod")!.SetValue(value, modArgs);
            return value;
        }

        public float Score(ModInputs inputs) =>
            (float)score!.Invoke(null, new object[] { MakeArgs(inputs), (float)inputs.Score, inputs.Batch, inputs.Head, inputs.Q, inputs.Kv })!;

        public float ScoreGrad(ModInputs inputs) =>
            (float)scoreGrad!.Invoke(null, new object[] { MakeArgs(inputs), (float)inputs.Score, inputs.Batch, inputs.Head, inputs.Q, inputs.Kv })!;

        public bool Mask(ModInputs inputs) =>
            (bool)mask!.Invoke(null, new object[] { MakeArgs(inputs), inputs.Batch, inputs.Head, inputs.Q, inputs.Kv })!;
    }
}
