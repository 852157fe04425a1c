extern alias Generators;

using Generators::XFormers.Generators.Mods;

namespace XFormers.Tests.Generator;

/// <summary>
/// The score mods' derivative (Mods/ModDerivative.cs) against central finite differences of the mod itself, both run by
/// the IR evaluator in double precision, at scores away from the mods' kinks.
/// </summary>
public class ModDerivativeTests
{
    private const string Params = "float score, int batch, int head, int q, int kv";

    public static TheoryData<string, string> Mods => new()
    {
        { "softcap", $"static float S({Params}) => 30f * MathF.Tanh(score / 30f);" },
        { "alibi from a table of slopes", $"public struct A {{ public Tensor<float> Slopes; }}\nstatic float S({Params}, in A args) => score + args.Slopes[head] * (kv - q);" },
        { "pow", $"static float S({Params}) => MathF.Pow(score, 3f) - 2f * MathF.Pow(score, 2f) + MathF.Pow(MathF.Abs(score) + 1f, 0.5f);" },
        { "min and max", $"static float S({Params}) => MathF.Max(MathF.Min(score * score, 4f), score - 1f) + Math.Min(score, 0.25f);" },
        { "conditional", $"static float S({Params}) => q - kv > 2 ? score * score : -score / 2f;" },
        { "locals and early return", $$"""
            static float S({{Params}})
            {
                float s2 = score * score;
                var t = MathF.Tanh(s2 / 10f);
                if (q < kv) return t * score;
                float u = s2 + t;
                return u / (1f + MathF.Abs(u));
            }
            """ },
        { "nested tanh exp log sqrt", $"static float S({Params}) => MathF.Log(1f + MathF.Exp(MathF.Tanh(score))) * MathF.Sqrt(2f + score * score);" },
        { "division by the score", $"static float S({Params}) => (score + 3f) / (score * score + 1f);" },
        { "float remainder", $"static float S({Params}) => score * 3f % 2.5f + score % (score * 0.5f + 7f);" },
        { "int casts and floor", $"static float S({Params}) => (float)(int)(q / 3) * score + MathF.Floor(score * 0.01f) + MathF.Ceiling(score) * 0f + (float)q / (kv + 1);" },
        { "const and unary minus", $"const float Cap = 20f;\nstatic float S({Params}) {{ const float inv = 1f / Cap; return -Cap * MathF.Tanh(-score * inv); }}" },
        { "exp of a scaled score with arguments", $"public struct A {{ public float T; public int W; public bool F; }}\nstatic float S({Params}, A args) {{ var x = score / args.T; if (args.F && q - kv < args.W) return MathF.Exp(x) - 1f; return x * x * x; }}" },
    };

    [Theory]
    [MemberData(nameof(Mods))]
    public void MatchesCentralFiniteDifferences(string name, string method)
    {
        _ = name;
        var mods = ModTestSupport.Mods("[Attention(ScoreMod = nameof(S))] public static partial AttentionKernel V();\n" + method);
        var score = mods.Score.ShouldNotBeNull();
        var grad = mods.ScoreGrad.ShouldNotBeNull();
        foreach (var (q, kv) in new[] { (5, 1), (0, 4), (9, 9) })
        {
            foreach (double s in new[] { -7.3, -1.7, -0.35, 0.6, 1.3, 2.9, 11.4 })
            {
                var inputs = Inputs(s, q, kv);
                double h = 1e-5 * Math.Max(1, Math.Abs(s));
                double Value(double at) { inputs.Score = at; return ModEvaluator.Evaluate(score, inputs); }
                double expected = (Value(s + h) - Value(s - h)) / (2 * h);
                inputs.Score = s;
                double actual = ModEvaluator.Evaluate(grad, inputs);
                Math.Abs(actual - expected).ShouldBeLessThan(1e-5 * Math.Max(1, Math.Abs(expected)), $"{name} at score {s}, q {q}, kv {kv}");
            }
        }
    }

    private static ModInputs Inputs(double score, int q, int kv)
    {
        var inputs = new ModInputs { Score = score, Batch = 1, Head = 2, Q = q, Kv = kv };
        inputs.Floats[0] = 1.7;
        inputs.Ints[0] = 3;
        inputs.Ints[1] = 1;
        inputs.FloatTables[0] = new ModTableValues(new[] { 0.5, 0.25, 0.125, 0.0625 });
        return inputs;
    }

    [Fact]
    public void SoftcapReadsLikeTheRule()
    {
        var mods = ModTestSupport.Mods("[Attention(ScoreMod = nameof(S))] public static partial AttentionKernel V();\n"
            + $"static float S({Params}) => 30f * MathF.Tanh(score / 30f);");
        mods.ScoreGradBody.ShouldBe(new[]
        {
            "return 30f * ((1f - global::XFormers.Kernels.KernelMath.Tanh(score / 30f) * global::XFormers.Kernels.KernelMath.Tanh(score / 30f)) / 30f);",
        });
    }

    [Fact]
    public void TermsWithoutTheScoreVanish()
    {
        var mods = ModTestSupport.Mods("public struct A { public Tensor<float> Slopes; }\n[Attention(ScoreMod = nameof(S))] public static partial AttentionKernel V();\n"
            + $"static float S({Params}, in A args) {{ float bias = args.Slopes[head] * (kv - q); return score + bias; }}");
        mods.ScoreGradBody.ShouldBe(new[] { "return 1f;" });
    }

    [Fact]
    public void FloatLocalsGetDerivativeLocals()
    {
        var mods = ModTestSupport.Mods("[Attention(ScoreMod = nameof(S))] public static partial AttentionKernel V();\n"
            + $"static float S({Params}) {{ float e = MathF.Exp(score); int d = q - kv; if (d > 8) return e; float y = e * e; return y + d; }}");
        mods.ScoreGradBody.ShouldBe(new[]
        {
            "float m_e = global::XFormers.Kernels.KernelMath.Exp(score);",
            "float dm_e = global::XFormers.Kernels.KernelMath.Exp(score);",
            "int m_d = q - kv;",
            "if (m_d > 8) return dm_e;",
            "float dm_y = dm_e * m_e + m_e * dm_e;",
            "return dm_y;",
        });
    }
}
