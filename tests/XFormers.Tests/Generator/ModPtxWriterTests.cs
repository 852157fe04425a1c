extern alias Generators;

using System.Text.RegularExpressions;
using Generators::XFormers.Generators.Hopper;
using Generators::XFormers.Generators.Models;
using Generators::XFormers.Generators.Mods;

namespace XFormers.Tests.Generator;

/// <summary>
/// The mods as sm_90a PTX (Mods/ModPtxWriter.cs), checked without a GPU or ptxas: the instructions each construct needs,
/// the argument parameter's offsets (ModParamLayout), bounds-checked table loads, every register declared, ASCII only.
/// The device harness assembles and runs the kernels that use them.
/// </summary>
public class ModPtxWriterTests
{
    private const string Everything = """
        public struct Args { public Tensor<int> DocId; public int Window; public float Cap; public bool Flag; public Tensor<float> Slopes; public Tensor<int> Grid; public Tensor<float> Cube; }

        [Attention(ScoreMod = nameof(Score), MaskMod = nameof(Mask))]
        public static partial AttentionKernel V();

        static float Score(float s, int b, int h, int q, int kv, in Args args)
        {
            float capped = args.Cap * MathF.Tanh(s / args.Cap);
            int distance = Math.Abs(q - kv) / 16 % 5;
            if (!args.Flag) return capped;
            var bias = args.Slopes[h] * (kv - q) + (float)args.Grid[q, kv];
            if (distance > args.Window) return -capped;
            return MathF.Max(capped, bias) + MathF.Min(MathF.Log(MathF.Sqrt(s * s + 1f)), args.Cube[b, h, q]) + MathF.Exp(-s) + MathF.Pow(s, 3f) + MathF.Pow(s, 1.5f) + MathF.Pow(s, 5f);
        }

        static bool Mask(int b, int h, int q, int kv, in Args args) => args.DocId[q] == args.DocId[kv] && (q >= kv || args.Flag);
        """;

    private static (string Ptx, Reg Score, Reg Grad, Reg Mask) Emit()
    {
        var mods = ModTestSupport.Mods(Everything);
        var w = new PtxWriter();
        var inputs = new ModPtxInputs(w.F32("s"), w.S32("batch"), w.S32("head"), w.S32("q"), w.S32("kv"), "mod_args");
        var score = ModPtxWriter.EmitScore(w, mods, inputs);
        var grad = ModPtxWriter.EmitScoreGrad(w, mods, inputs);
        var mask = ModPtxWriter.EmitMask(w, mods, inputs);
        // The backward's one emission of both (the derivative's body binds the score's locals again).
        ModPtxWriter.EmitScoreAndGrad(w, mods, inputs);
        return (w.Body(), score, grad, mask);
    }

    [Fact]
    public void EachConstructHasItsInstructions()
    {
        var (ptx, _, _, _) = Emit();
        foreach (var instruction in new[]
        {
            "tanh.approx.f32", "ex2.approx.ftz.f32", "lg2.approx.f32", "sqrt.rn.f32", "div.full.f32", "max.NaN.f32", "min.NaN.f32",
            "abs.s32", "div.s32", "rem.s32", "selp.f32", "setp.gt.s32", "setp.eq.s32", "setp.ge.s32", "and.pred", "or.pred",
            "not.pred", "neg.f32", "cvt.rn.f32.s32", "copysign.f32", "mul.rn.f32",
        })
        {
            ptx.ShouldContain(instruction + " ", customMessage: instruction);
        }
    }

    [Fact]
    public void ArgumentsAreReadAtTheLayoutsOffsets()
    {
        var (ptx, _, _, _) = Emit();
        ptx.ShouldContain($"ld.param.s32 %tmp_s32_", customMessage: "int slots");
        ptx.ShouldContain($"[mod_args+{ModParamLayout.Int(0)}]");      // Window
        ptx.ShouldContain($"[mod_args+{ModParamLayout.Float(0)}]");    // Cap
        ptx.ShouldContain($"[mod_args+{ModParamLayout.Int(1)}]");      // Flag
        ptx.ShouldContain($"[mod_args+{ModParamLayout.TablePointer(false, 1)}]");    // Grid
        ptx.ShouldContain($"[mod_args+{ModParamLayout.TableStride(false, 1, 0)}]");  // Grid's Stride0 (rank 2)
        ptx.ShouldContain($"[mod_args+{ModParamLayout.TableStride(true, 1, 1)}]");   // Cube's Stride1 (rank 3)
        ptx.ShouldContain($"[mod_args+{ModParamLayout.TableLength(true, 0)}]");      // Slopes' length
        ModParamLayout.TableStride(true, 3, 1).ShouldBe(ModParamLayout.Bytes - 8); // the last field, float table 3's Stride1, ends the parameter
        ModPtxWriter.ParamDeclaration("mod_args").ShouldBe(".param .align 8 .b8 mod_args[320]");
    }

    [Fact]
    public void TableLoadsAreGuardedByTheirBoundsCheck()
    {
        var (ptx, _, _, _) = Emit();
        var loads = Regex.Matches(ptx, @"(?m)^\s*(@%\w+ )?ld\.global\.nc\.(s32|f32) ").Cast<Match>().ToList();
        loads.Count.ShouldBe(14); // Slopes, Grid, Cube in the score and again in its gradient (max and min compare them); DocId twice in the mask; then the score and its gradient again in one emission
        loads.ShouldAllBe(m => m.Groups[1].Success);
        Regex.Matches(ptx, @"setp\.lt\.u64").Count.ShouldBe(loads.Count);
        ptx.ShouldContain("mov.f32 %tmp_f32_", customMessage: "a float table's default");
        ptx.ShouldContain(", 0f7FFFFFFF;");
    }

    [Fact]
    public void TheModuleTextIsWellFormed()
    {
        var (ptx, score, grad, mask) = Emit();
        ptx.All(c => c < 128).ShouldBeTrue();
        ptx.Count(c => c == '[').ShouldBe(ptx.Count(c => c == ']'));
        ptx.Count(c => c == '{').ShouldBe(ptx.Count(c => c == '}'));
        var declared = Regex.Matches(ptx, @"\.reg \.\w+ %(\w+);").Select(m => m.Groups[1].Value).ToHashSet();
        var used = Regex.Matches(ptx, @"%(\w+)").Select(m => m.Groups[1].Value).ToHashSet();
        used.Except(declared).ShouldBeEmpty();
        Regex.IsMatch(ptx, @"\.reg \.f32 " + Regex.Escape(score.Name) + ";").ShouldBeTrue();
        Regex.IsMatch(ptx, @"\.reg \.f32 " + Regex.Escape(grad.Name) + ";").ShouldBeTrue();
        Regex.IsMatch(ptx, @"\.reg \.pred " + Regex.Escape(mask.Name) + ";").ShouldBeTrue();
        foreach (var line in ptx.Split('\n').Where(l => l.StartsWith("    ", StringComparison.Ordinal) && !l.TrimStart().StartsWith("//", StringComparison.Ordinal) && !l.Contains(".reg")))
            line.TrimEnd().ShouldEndWith(";");
    }

    [Fact]
    public void EarlyReturnsFoldIntoSelectsInSourceOrder()
    {
        var mods = ModTestSupport.Mods("""
            [Attention(ScoreMod = nameof(S))] public static partial AttentionKernel V();
            static float S(float score, int batch, int head, int q, int kv) { if (q < kv) return 1f; if (q == kv) return 2f; return score; }
            """);
        var w = new PtxWriter();
        var inputs = new ModPtxInputs(w.F32("s"), w.S32("batch"), w.S32("head"), w.S32("q"), w.S32("kv"), "mod_args");
        var result = ModPtxWriter.EmitScore(w, mods, inputs);
        var selects = Regex.Matches(w.Body(), @"selp\.f32 (%\w+), (%\w+), (%\w+), (%\w+);").Cast<Match>().ToList();
        selects.Count.ShouldBe(2);
        // The second return's select is inside the first's: first(q < kv) ? 1 : (q == kv ? 2 : score).
        selects[0].Groups[3].Value.ShouldBe("%s");
        selects[1].Groups[3].Value.ShouldBe(selects[0].Groups[1].Value);
        selects[1].Groups[1].Value.ShouldBe(result.Name);
    }

    [Fact]
    public void ADivisionByAConstantIsAMultiplicationByItsReciprocalAndAScoreSharesWorkWithItsDerivative()
    {
        var mods = ModTestSupport.Mods("""
            [Attention(ScoreMod = nameof(Softcap))] public static partial AttentionKernel V();
            static float Softcap(float score, int batch, int head, int q, int kv) => 30f * MathF.Tanh(score / 30f);
            """);
        var w = new PtxWriter();
        var inputs = new ModPtxInputs(w.F32("s"), w.S32("batch"), w.S32("head"), w.S32("q"), w.S32("kv"), "mod_args");
        var (score, grad) = ModPtxWriter.EmitScoreAndGrad(w, mods, inputs);
        string ptx = w.Body();
        ptx.ShouldNotContain("div.");
        // score / 30 as score · (1/30f), and the derivative's / 30 the same way.
        ptx.ShouldContain("mul.rn.f32 %tmp_f32_2, %s, " + PtxWriter.Float(1f / 30f) + ";");
        // tanh(score / 30) once for both the value and the derivative.
        Regex.Matches(ptx, @"tanh\.approx\.f32").Count.ShouldBe(1);
        score.ShouldNotBe(grad);
    }

    [Fact]
    public void SubexpressionsOfTheHeadAloneAreComputedOnceForEveryScore()
    {
        var mods = ModTestSupport.Mods("""
            public struct Args { public Tensor<float> Slopes; public int Window; }
            [Attention(ScoreMod = nameof(Alibi), MaskMod = nameof(Window))] public static partial AttentionKernel V();
            static float Alibi(float score, int batch, int head, int q, int kv, in Args args) => score + args.Slopes[head] * (kv - q);
            static bool Window(int batch, int head, int q, int kv, in Args args) => q - kv < args.Window + head;
            """);
        var w = new PtxWriter();
        var head = w.S32("head");
        var invariant = ModPtxWriter.EmitHeadInvariant(w, mods, head, "mod_args");
        string hoisted = w.Body();
        // The slope's bounds-checked load and Window + head: nothing that reads the score, q, kv or the batch.
        Regex.Matches(hoisted, @"ld\.global\.nc\.f32").Count.ShouldBe(1);
        hoisted.ShouldContain("add.s32");
        invariant.Count.ShouldBe(2);
        var inputs = new ModPtxInputs(w.F32("s"), w.S32("batch"), head, w.S32("q"), w.S32("kv"), "mod_args", invariant);
        for (int i = 0; i < 3; i++)
        {
            ModPtxWriter.EmitScoreAndGrad(w, mods, inputs);
            ModPtxWriter.EmitMask(w, mods, inputs);
        }
        string all = w.Body();
        Regex.Matches(all, @"ld\.global\.nc\.f32").Count.ShouldBe(1);
        Regex.Matches(all, @"\[mod_args\+" + ModParamLayout.Int(0) + @"\]").Count.ShouldBe(1);
    }

    [Theory]
    [InlineData("score + args.Slopes[head] * (kv - q)", 1)]
    [InlineData("score - 0.5f * (q - kv)", -1)]
    [InlineData("score + (float)(kv - q) * (float)(q - kv)", 0)]
    public void TheDistanceTheKernelFormsReplacesTheConversionOfKvMinusQ(string body, int sign)
    {
        var mods = ModTestSupport.Mods($$"""
            public struct Args { public Tensor<float> Slopes; }
            [Attention(ScoreMod = nameof(Score))] public static partial AttentionKernel V();
            static float Score(float score, int batch, int head, int q, int kv, in Args args) => {{body}};
            """);
        ModPtxWriter.UsesDistance(mods).ShouldBeTrue();
        var w = new PtxWriter();
        var distance = w.F32("distance");
        var inputs = new ModPtxInputs(w.F32("s"), w.S32("batch"), w.S32("head"), w.S32("q"), w.S32("kv"), "mod_args") { Distance = distance };
        ModPtxWriter.EmitScoreAndGrad(w, mods, inputs);
        string ptx = w.Body();
        // No int-to-float conversion a score (a quarter-rate instruction): the kernel's distance, negated for q − kv.
        ptx.ShouldNotContain("cvt.rn.f32.s32");
        ptx.ShouldContain(", " + distance.Name + (sign == 0 ? "" : ";"));
        ptx.Contains("neg.f32 %tmp_f32", StringComparison.Ordinal).ShouldBe(sign <= 0);

        // Without the kernel's distance the cast is computed as written.
        var plain = new PtxWriter();
        ModPtxWriter.EmitScore(plain, mods, new ModPtxInputs(plain.F32("s"), plain.S32("batch"), plain.S32("head"), plain.S32("q"), plain.S32("kv"), "mod_args"));
        plain.Body().ShouldContain("cvt.rn.f32.s32");
        ModPtxWriter.UsesDistance(ModTestSupport.Mods("""
            [Attention(ScoreMod = nameof(Score))] public static partial AttentionKernel V();
            static float Score(float score, int batch, int head, int q, int kv) => score + q;
            """)).ShouldBeFalse();
    }
}
