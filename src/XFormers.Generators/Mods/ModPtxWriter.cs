using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using XFormers.Generators.Hopper;
using XFormers.Generators.Models;

namespace XFormers.Generators.Mods
{
    /// <summary>
    /// What a mod reads in an sm_90a kernel: the registers of its parameters (score f32; batch, head, q, kv s32) and the
    /// name of the kernel parameter that holds the run-time arguments (<see cref="ModPtxWriter.ParamDeclaration"/>, laid
    /// out as <see cref="ModParamLayout"/>).
    /// </summary>
    /// <remarks>
    /// <see cref="Invariant"/> holds subexpressions already computed where the kernel put them (<see
    /// cref="ModPtxWriter.EmitHeadInvariant"/>): an emission uses those registers instead of computing them again.
    /// </remarks>
    /// <remarks>
    /// <see cref="Distance"/>, when the kernel gives it, is (float)(kv − q) formed from a per-row base (one cvt a row and
    /// tile, then an add a score): the value of a mod's <c>(float)(kv - q)</c> (ALiBi's distance) without a conversion a
    /// score, which runs at a quarter of the ALU rate. It equals the cast exactly while |kv − q| stays below 2^24.
    /// </remarks>
    internal sealed record ModPtxInputs(Reg Score, Reg Batch, Reg Head, Reg Q, Reg Kv, string ArgsParam, IReadOnlyDictionary<ModExpr, Reg>? Invariant = null)
    {
        /// <summary>(float)(kv − q) for this score, or the default register (no name) when the kernel does not form it.</summary>
        public Reg Distance { get; init; }
    }

    /// <summary>
    /// Mods as PTX for the sm_90a kernels, through <see cref="PtxWriter"/>: straight-line code (every statement is
    /// evaluated; mods are pure and their table reads are bounds-checked, so nothing faults), early returns folded into
    /// <c>selp</c> from the last to the first; an expression that occurs twice is computed once. Every register is a fresh
    /// temporary, so a kernel may emit a mod at several sites.
    /// </summary>
    internal static class ModPtxWriter
    {
        private const string Log2E = "0f3FB8AA3B";
        private const string Ln2 = "0f3F317218";

        /// <summary>The kernel parameter that carries the mods' arguments: <c>.param .align 8 .b8 NAME[320]</c>.</summary>
        public static string ParamDeclaration(string name) =>
            $".param .align {ModParamLayout.Alignment} .b8 {name}[{ModParamLayout.Bytes}]";

        /// <summary>The score mod's value (f32).</summary>
        public static Reg EmitScore(PtxWriter w, ModsModel mods, ModPtxInputs inputs) => Emit(w, mods.Score!, inputs, "score mod " + mods.ScoreMethod);

        /// <summary>d(score mod)/d(score) (f32).</summary>
        public static Reg EmitScoreGrad(PtxWriter w, ModsModel mods, ModPtxInputs inputs) => Emit(w, mods.ScoreGrad!, inputs, "d(score mod " + mods.ScoreMethod + ")/d(score)");

        /// <summary>
        /// d(score mod)/d(score), then the score mod's value, in one emission: what the two share (tanh(score / 30) in a
        /// softcap and its derivative) is computed once.
        /// </summary>
        public static (Reg Score, Reg Grad) EmitScoreAndGrad(PtxWriter w, ModsModel mods, ModPtxInputs inputs)
        {
            var emitter = new Emitter(w, inputs);
            w.Comment("d(score mod " + mods.ScoreMethod + ")/d(score)");
            var grad = emitter.Body(mods.ScoreGrad!);
            w.Comment("score mod " + mods.ScoreMethod);
            var score = emitter.Body(mods.Score!);
            return (score, grad);
        }

        /// <summary>
        /// The mods' largest subexpressions that read nothing but the head, the run-time scalars, tables indexed by those,
        /// and constants (ALiBi's <c>args.Slopes[head]</c>), emitted once here; pass the result as
        /// <see cref="ModPtxInputs.Invariant"/> so that per-score emissions reuse them. Empty when there are none.
        /// </summary>
        public static IReadOnlyDictionary<ModExpr, Reg> EmitHeadInvariant(PtxWriter w, ModsModel mods, Reg head, string argsParam)
        {
            var found = new List<ModExpr>();
            foreach (var body in new[] { mods.Score, mods.ScoreGrad, mods.Mask })
            {
                if (body is null)
                    continue;
                foreach (var statement in body.Statements)
                {
                    switch (statement)
                    {
                        case ModLet let:
                            CollectInvariant(let.Value, found);
                            break;
                        case ModReturnIf returnIf:
                            CollectInvariant(returnIf.Condition, found);
                            CollectInvariant(returnIf.Value, found);
                            break;
                        case ModReturn ret:
                            CollectInvariant(ret.Value, found);
                            break;
                    }
                }
            }
            var result = new Dictionary<ModExpr, Reg>();
            if (found.Count == 0)
                return result;
            w.Comment("Mod subexpressions that read only the head and the run-time arguments, once for every score that uses them.");
            var emitter = new Emitter(w, new ModPtxInputs(default, default, head, default, default, argsParam));
            foreach (var e in found)
            {
                if (!result.ContainsKey(e))
                    result[e] = emitter.Value(e);
            }
            return result;
        }

        /// <summary>The largest subexpressions of <paramref name="e"/> that <see cref="IsHeadInvariant"/> holds for and that cost an instruction.</summary>
        private static void CollectInvariant(ModExpr e, List<ModExpr> found)
        {
            if (IsHeadInvariant(e))
            {
                if (e is not (ModConstant or ModParameterRead))
                    found.Add(e);
                return;
            }
            foreach (var child in ModWalk.Children(e))
                CollectInvariant(child, found);
        }

        private static bool IsHeadInvariant(ModExpr e) => e switch
        {
            ModConstant or ModScalarRead => true,
            ModParameterRead parameter => parameter.Parameter == ModParameter.Head,
            ModLocal => false,
            _ => ModWalk.Children(e).All(IsHeadInvariant),
        };

        /// <summary>Whether a mod casts kv − q (or q − kv) to float: the kernel then forms <see cref="ModPtxInputs.Distance"/>.</summary>
        public static bool UsesDistance(ModsModel mods) =>
            new[] { mods.Score, mods.ScoreGrad, mods.Mask }.Any(body => body is not null && ModWalk.Descendants(body).Any(e => DistanceSign(e) != 0));

        /// <summary>Whether a mod body reads a run-time table (a load a score).</summary>
        public static bool ReadsTable(ModBody? body) => body is not null && ModWalk.Descendants(body).Any(e => e is ModTableRead);

        /// <summary>1 for (float)(kv − q), −1 for (float)(q − kv), else 0.</summary>
        private static int DistanceSign(ModExpr e) => e switch
        {
            ModCast { Type: ModType.Float, Operand: ModBinary { Op: ModBinaryOp.Subtract, Left: ModParameterRead { Parameter: ModParameter.Kv }, Right: ModParameterRead { Parameter: ModParameter.Q } } } => 1,
            ModCast { Type: ModType.Float, Operand: ModBinary { Op: ModBinaryOp.Subtract, Left: ModParameterRead { Parameter: ModParameter.Q }, Right: ModParameterRead { Parameter: ModParameter.Kv } } } => -1,
            _ => 0,
        };

        /// <summary>Whether the mask mod keeps the score (pred).</summary>
        public static Reg EmitMask(PtxWriter w, ModsModel mods, ModPtxInputs inputs) => Emit(w, mods.Mask!, inputs, "mask mod " + mods.MaskMethod);

        /// <summary>Any mod body; its result register (f32 for a float body, pred for a bool one).</summary>
        public static Reg Emit(PtxWriter w, ModBody body, ModPtxInputs inputs, string what)
        {
            w.Comment(what);
            return new Emitter(w, inputs).Body(body);
        }

        private sealed class Emitter
        {
            private readonly PtxWriter w;
            private readonly ModPtxInputs inputs;
            private readonly Dictionary<string, Reg> locals = new(System.StringComparer.Ordinal);
            // Mods are pure and the code is straight-line: an expression met twice (tanh in tanh's derivative) is computed once.
            private readonly Dictionary<ModExpr, Reg> computed = new();

            public Emitter(PtxWriter w, ModPtxInputs inputs)
            {
                this.w = w;
                this.inputs = inputs;
                Seed();
            }

            private void Seed()
            {
                if (inputs.Invariant is null)
                    return;
                foreach (var pair in inputs.Invariant)
                    computed[pair.Key] = pair.Value;
            }

            public Reg Body(ModBody body)
            {
                var earlyReturns = new List<(Reg Condition, Reg Value)>();
                Reg result = default;
                foreach (var statement in body.Statements)
                {
                    switch (statement)
                    {
                        case ModLet let:
                        {
                            var value = Value(let.Value);
                            if (locals.ContainsKey(let.Local.Name))
                            {
                                // A second body rebinds the name: what was computed from the old binding must not be reused.
                                computed.Clear();
                                Seed();
                            }
                            locals[let.Local.Name] = value;
                            break;
                        }
                        case ModReturnIf returnIf:
                            earlyReturns.Add((Value(returnIf.Condition), Value(returnIf.Value)));
                            break;
                        case ModReturn ret:
                            result = Value(ret.Value);
                            break;
                    }
                }
                // The first early return whose condition holds wins.
                for (int i = earlyReturns.Count - 1; i >= 0; i--)
                    result = Select(body.Type, earlyReturns[i].Condition, earlyReturns[i].Value, result);
                return result;
            }

            private static string Ptx(ModType type) => type switch { ModType.Float => "f32", ModType.Int => "s32", _ => "pred" };

            private Reg Temp(ModType type) => w.Temp(Ptx(type));

            public Reg Value(ModExpr e)
            {
                if (e is ModParameterRead or ModLocal)
                    return Compute(e);
                if (!computed.TryGetValue(e, out var r))
                    computed[e] = r = Compute(e);
                return r;
            }

            private Reg Compute(ModExpr e)
            {
                switch (e)
                {
                    case ModConstant constant:
                        return Constant(constant);
                    case ModParameterRead parameter:
                        return parameter.Parameter switch
                        {
                            ModParameter.Score => inputs.Score,
                            ModParameter.Batch => inputs.Batch,
                            ModParameter.Head => inputs.Head,
                            ModParameter.Q => inputs.Q,
                            _ => inputs.Kv,
                        };
                    case ModScalarRead scalar:
                        return Scalar(scalar);
                    case ModTableRead table:
                        return Table(table);
                    case ModLocal local:
                        return locals[local.Name];
                    case ModUnary unary:
                    {
                        var operand = Value(unary.Operand);
                        var r = Temp(unary.Type);
                        w.Op(unary.Op == ModUnaryOp.Not ? "not.pred" : "neg." + Ptx(unary.Type), r, operand);
                        return r;
                    }
                    case ModBinary binary:
                        return Binary(binary);
                    case ModConditional conditional:
                    {
                        var condition = Value(conditional.Condition);
                        return Select(conditional.Type, condition, Value(conditional.WhenTrue), Value(conditional.WhenFalse));
                    }
                    case ModCast cast when inputs.Distance.Name is not null && DistanceSign(cast) != 0:
                    {
                        if (DistanceSign(cast) > 0)
                            return inputs.Distance;
                        var negated = Temp(ModType.Float);
                        w.Op("neg.f32", negated, inputs.Distance);
                        return negated;
                    }
                    case ModCast cast:
                    {
                        var operand = Value(cast.Operand);
                        var r = Temp(cast.Type);
                        // int → float rounds to nearest; float → int truncates, as C# does.
                        w.Op(cast.Type == ModType.Float ? "cvt.rn.f32.s32" : "cvt.rzi.s32.f32", r, operand);
                        return r;
                    }
                    case ModCall call:
                        return Call(call);
                    default:
                        throw new System.InvalidOperationException("Unknown mod expression " + e.GetType().Name);
                }
            }

            private Reg Constant(ModConstant constant)
            {
                if (constant.Type == ModType.Float)
                {
                    var f = w.Temp("f32");
                    w.Op("mov.f32", f, PtxWriter.Float((float)constant.Value));
                    return f;
                }
                var i = w.Temp("s32");
                w.Op("mov.s32", i, ((int)constant.Value).ToString(CultureInfo.InvariantCulture));
                return constant.Type == ModType.Int ? i : NonZero(i);
            }

            private Reg NonZero(Reg value)
            {
                var p = w.Temp("pred");
                w.Op("setp.ne.s32", p, value, "0");
                return p;
            }

            private string At(int offset) => $"[{inputs.ArgsParam}+{offset}]";

            private Reg Scalar(ModScalarRead scalar)
            {
                if (scalar.Type == ModType.Float)
                {
                    var f = w.Temp("f32");
                    w.Op("ld.param.f32", f, At(ModParamLayout.Float(scalar.Slot)));
                    return f;
                }
                var i = w.Temp("s32");
                w.Op("ld.param.s32", i, At(ModParamLayout.Int(scalar.Slot)));
                return scalar.Type == ModType.Int ? i : NonZero(i);
            }

            // Element i0 · Stride0 + i1 · Stride1 + i2 of a table, loaded only inside [0, length): outside it the value stays
            // 0 (int) or NaN (float) and no address is touched (PTX ISA 9.7.9.8 ld, guarded by a predicate).
            private Reg Table(ModTableRead table)
            {
                bool isFloat = table.Type == ModType.Float;
                int rank = table.Indices.Count;
                Reg index = default;
                for (int dim = 0; dim < rank; dim++)
                {
                    var wide = w.Temp("s64");
                    w.Op("cvt.s64.s32", wide, Value(table.Indices[dim]));
                    if (dim < rank - 1)
                    {
                        var stride = w.Temp("s64");
                        w.Op("ld.param.s64", stride, At(ModParamLayout.TableStride(isFloat, table.Slot, dim)));
                        var scaled = w.Temp("s64");
                        w.Op("mul.lo.s64", scaled, wide, stride);
                        wide = scaled;
                    }
                    if (dim == 0)
                    {
                        index = wide;
                    }
                    else
                    {
                        var sum = w.Temp("s64");
                        w.Op("add.s64", sum, index, wide);
                        index = sum;
                    }
                }
                var length = w.Temp("s64");
                w.Op("ld.param.s64", length, At(ModParamLayout.TableLength(isFloat, table.Slot)));
                var inside = w.Temp("pred");
                w.Op("setp.lt.u64", inside, index, length); // unsigned: a negative index is outside too
                var pointer = w.Temp("u64");
                w.Op("ld.param.u64", pointer, At(ModParamLayout.TablePointer(isFloat, table.Slot)));
                var global = w.Temp("u64");
                w.Op("cvta.to.global.u64", global, pointer);
                var offset = w.Temp("s64");
                w.Op("shl.b64", offset, index, "2");
                var address = w.Temp("u64");
                w.Op("add.s64", address, global, offset);
                var r = Temp(table.Type);
                w.Op(isFloat ? "mov.f32" : "mov.s32", r, isFloat ? "0f7FFFFFFF" : "0");
                w.OpIf(inside, false, isFloat ? "ld.global.nc.f32" : "ld.global.nc.s32", r, $"[{address}]");
                return r;
            }

            private Reg Binary(ModBinary binary)
            {
                var a = Value(binary.Left);
                var b = Value(binary.Right);
                var operands = binary.Left.Type;
                var r = Temp(binary.Type);
                string t = Ptx(operands);
                switch (binary.Op)
                {
                    // .rn: no contraction into fma, as C# rounds each operation.
                    case ModBinaryOp.Add: w.Op(operands == ModType.Float ? "add.rn.f32" : "add.s32", r, a, b); break;
                    case ModBinaryOp.Subtract: w.Op(operands == ModType.Float ? "sub.rn.f32" : "sub.s32", r, a, b); break;
                    case ModBinaryOp.Multiply: w.Op(operands == ModType.Float ? "mul.rn.f32" : "mul.lo.s32", r, a, b); break;
                    case ModBinaryOp.Divide when operands == ModType.Float && binary.Right is ModConstant { Value: var c } && c != 0 && !double.IsInfinity(c):
                        // By a constant: times its reciprocal (exact for a power of two, else within 1 ulp of the quotient);
                        // div.rn is a call-sized sequence that a softcap's score / 30 would run on every score.
                        w.Op("mul.rn.f32", r, a, PtxWriter.Float((float)(1.0 / (float)c)));
                        break;
                    // Otherwise div.full (within 2 ulp, PTX ISA 9.7.3.8): FlexAttention's Triton divides the same way.
                    case ModBinaryOp.Divide: w.Op(operands == ModType.Float ? "div.full.f32" : "div.s32", r, a, b); break;
                    case ModBinaryOp.Remainder:
                        if (operands == ModType.Int)
                        {
                            w.Op("rem.s32", r, a, b);
                        }
                        else
                        {
                            // a − trunc(a / b) · b: C#'s remainder takes the dividend's sign.
                            var quotient = w.Temp("f32");
                            w.Op("div.rn.f32", quotient, a, b);
                            w.Op("cvt.rzi.f32.f32", quotient, quotient);
                            var product = w.Temp("f32");
                            w.Op("mul.rn.f32", product, quotient, b);
                            w.Op("sub.rn.f32", r, a, product);
                        }
                        break;
                    case ModBinaryOp.And: w.Op("and.pred", r, a, b); break;
                    case ModBinaryOp.Or: w.Op("or.pred", r, a, b); break;
                    case ModBinaryOp.Equal or ModBinaryOp.NotEqual when operands == ModType.Bool:
                        w.Op("xor.pred", r, a, b);
                        if (binary.Op == ModBinaryOp.Equal)
                            w.Op("not.pred", r, r);
                        break;
                    default:
                        // Ordered comparisons are false with a NaN operand; != is the unordered one (true), as in C#.
                        string compare = binary.Op switch
                        {
                            ModBinaryOp.Less => "lt",
                            ModBinaryOp.LessOrEqual => "le",
                            ModBinaryOp.Greater => "gt",
                            ModBinaryOp.GreaterOrEqual => "ge",
                            ModBinaryOp.Equal => "eq",
                            _ => operands == ModType.Float ? "neu" : "ne",
                        };
                        w.Op($"setp.{compare}.{t}", r, a, b);
                        break;
                }
                return r;
            }

            private Reg Select(ModType type, Reg condition, Reg whenTrue, Reg whenFalse)
            {
                var r = Temp(type);
                if (type != ModType.Bool)
                {
                    w.Op("selp." + Ptx(type), r, whenTrue, whenFalse, condition);
                    return r;
                }
                // (c ∧ a) ∨ (¬c ∧ b)
                var taken = w.Temp("pred");
                w.Op("and.pred", taken, condition, whenTrue);
                var other = w.Temp("pred");
                w.Op("not.pred", other, condition);
                w.Op("and.pred", other, other, whenFalse);
                w.Op("or.pred", r, taken, other);
                return r;
            }

            private Reg Call(ModCall call)
            {
                var x = Value(call.Arguments[0]);
                if (call.Function == ModFunction.Pow)
                    return Pow(x, ((ModConstant)call.Arguments[1]).Value);
                var r = Temp(call.Type);
                bool isFloat = call.Type == ModType.Float;
                switch (call.Function)
                {
                    case ModFunction.Tanh: w.Op("tanh.approx.f32", r, x); break;
                    case ModFunction.Exp: Exp2(r, Scale(x, Log2E)); break;
                    case ModFunction.Log:
                    {
                        var log2 = w.Temp("f32");
                        w.Op("lg2.approx.f32", log2, x);
                        w.Op("mul.f32", r, log2, Ln2);
                        break;
                    }
                    case ModFunction.Sqrt: w.Op("sqrt.rn.f32", r, x); break;
                    case ModFunction.Abs: w.Op(isFloat ? "abs.f32" : "abs.s32", r, x); break;
                    // min.NaN/max.NaN (sm_80+): a NaN operand gives NaN, as MathF.Min/Max do.
                    case ModFunction.Min: w.Op(isFloat ? "min.NaN.f32" : "min.s32", r, x, Value(call.Arguments[1])); break;
                    case ModFunction.Max: w.Op(isFloat ? "max.NaN.f32" : "max.s32", r, x, Value(call.Arguments[1])); break;
                    case ModFunction.Floor: w.Op("cvt.rmi.f32.f32", r, x); break;
                    case ModFunction.Ceiling: w.Op("cvt.rpi.f32.f32", r, x); break;
                }
                return r;
            }

            private Reg Scale(Reg x, string factor)
            {
                var r = w.Temp("f32");
                w.Op("mul.f32", r, x, factor);
                return r;
            }

            /// <summary>2^x by ex2.approx.ftz (PTX ISA 9.7.3.20).</summary>
            private void Exp2(Reg r, Reg x) => w.Op("ex2.approx.ftz.f32", r, x);

            /// <summary>
            /// x^c for a constant c: small integer powers by multiplication, 0.5 by sqrt, the rest as 2^(c · log2 x) with the
            /// sign of x for odd integer c (a negative x with a fractional c gives NaN, as MathF.Pow does).
            /// </summary>
            private Reg Pow(Reg x, double c)
            {
                var r = w.Temp("f32");
                int n = (int)c;
                bool integer = n == c;
                if (c == 0.5)
                {
                    w.Op("sqrt.rn.f32", r, x);
                    return r;
                }
                if (integer && n >= 1 && n <= 4)
                {
                    Reg product = x;
                    for (int k = 1; k < n; k++)
                    {
                        var next = w.Temp("f32");
                        w.Op("mul.rn.f32", next, product, x);
                        product = next;
                    }
                    w.Op("mov.f32", r, product);
                    return r;
                }
                var magnitude = x;
                if (integer)
                {
                    magnitude = w.Temp("f32");
                    w.Op("abs.f32", magnitude, x);
                }
                var log2 = w.Temp("f32");
                w.Op("lg2.approx.f32", log2, magnitude);
                Exp2(r, Scale(log2, PtxWriter.Float((float)c)));
                if (integer && n % 2 != 0)
                    w.Op("copysign.f32", r, x, r);
                return r;
            }
        }
    }
}
