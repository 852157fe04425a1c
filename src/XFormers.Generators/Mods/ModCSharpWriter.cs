using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis.CSharp;

namespace XFormers.Generators.Mods
{
    /// <summary>
    /// IR → the C# statements of the kernels' <c>ModScore</c>, <c>ModScoreGrad</c> and <c>ModMask</c> (parameters <c>a</c>,
    /// <c>score</c>, <c>batch</c>, <c>head</c>, <c>q</c>, <c>kv</c>; the arguments at <c>a.Mod</c>), and of <c>BindMods</c>.
    /// Locals keep the parser's names (<c>m_x</c>, derivatives <c>dm_x</c>), which no kernel name starts with. Float math goes
    /// through <c>XFormers.Kernels.KernelMath</c>, which compiles for the CPU and CUDA accelerators and propagates NaN
    /// through min and max as C# does.
    /// </summary>
    internal static class ModCSharpWriter
    {
        private const string KernelMath = "global::XFormers.Kernels.KernelMath.";
        private const string ModArgsRead = "global::XFormers.Kernels.ModArgs.Read";

        /// <summary>The body's statements, one per line, unindented.</summary>
        public static IEnumerable<string> Statements(ModBody body)
        {
            foreach (var statement in body.Statements)
            {
                switch (statement)
                {
                    case ModLet let:
                        yield return $"{TypeName(let.Local.Type)} {let.Local.Name} = {Expression(let.Value)};";
                        break;
                    case ModReturnIf returnIf:
                        yield return $"if ({Expression(returnIf.Condition)}) return {Expression(returnIf.Value)};";
                        break;
                    case ModReturn ret:
                        yield return $"return {Expression(ret.Value)};";
                        break;
                }
            }
        }

        /// <summary>
        /// BindMods' statements for the fields a mod reads: <c>m.Int(slot, args.F);</c>, <c>m.Int(slot, args.Flag ? 1 : 0);</c>,
        /// <c>m.Float(slot, args.F);</c>, <c>m.IntTable(slot, args.F, rank, "F");</c>, <c>m.FloatTable(…)</c>.
        /// </summary>
        public static IEnumerable<string> Bind(IEnumerable<ModField> fields)
        {
            foreach (var field in fields.Where(f => f.Read))
            {
                string access = "args." + Identifier(field.Name);
                yield return field.Kind switch
                {
                    ModFieldKind.Int => $"m.Int({field.Slot}, {access});",
                    ModFieldKind.Bool => $"m.Int({field.Slot}, {access} ? 1 : 0);",
                    ModFieldKind.Float => $"m.Float({field.Slot}, {access});",
                    ModFieldKind.IntTable => $"m.IntTable({field.Slot}, {access}, {field.Rank}, {Literal(field.Name)});",
                    _ => $"m.FloatTable({field.Slot}, {access}, {field.Rank}, {Literal(field.Name)});",
                };
            }
        }

        private static string Identifier(string name) =>
            SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None ? "@" + name : name;

        private static string Literal(string text) => SymbolDisplay.FormatLiteral(text, quote: true);

        public static string TypeName(ModType type) => type switch
        {
            ModType.Float => "float",
            ModType.Int => "int",
            _ => "bool",
        };

        // C#'s precedence, tightest first; an operand of lower precedence than its place takes parentheses.
        private const int Primary = 15, Unary = 14, Multiplicative = 13, Additive = 12, Relational = 10, Equality = 9,
            ConditionalAnd = 5, ConditionalOr = 4, Conditional = 3, Lowest = 0;

        public static string Expression(ModExpr e) => Print(e, Lowest);

        private static string Print(ModExpr e, int context)
        {
            var (text, precedence) = Format(e);
            return precedence < context ? "(" + text + ")" : text;
        }

        private static (string Text, int Precedence) Format(ModExpr e)
        {
            switch (e)
            {
                case ModConstant constant:
                    return Constant(constant);
                case ModParameterRead parameter:
                    return (parameter.Parameter switch
                    {
                        ModParameter.Score => "score",
                        ModParameter.Batch => "batch",
                        ModParameter.Head => "head",
                        ModParameter.Q => "q",
                        _ => "kv",
                    }, Primary);
                case ModScalarRead scalar:
                    return scalar.Type switch
                    {
                        ModType.Float => ($"a.Mod.Float{scalar.Slot}", Primary),
                        ModType.Int => ($"a.Mod.Int{scalar.Slot}", Primary),
                        _ => ($"a.Mod.Int{scalar.Slot} != 0", Equality),
                    };
                case ModTableRead table:
                    return ($"{ModArgsRead}({TableName(table)}, {TableIndex(table)})", Primary);
                case ModLocal local:
                    return (local.Name, Primary);
                case ModUnary unary:
                {
                    string operand = Print(unary.Operand, Unary);
                    string op = unary.Op == ModUnaryOp.Not ? "!" : "-";
                    // `- -x` must not become `--x`.
                    return (op + (operand.StartsWith("-", System.StringComparison.Ordinal) ? "(" + operand + ")" : operand), Unary);
                }
                case ModBinary binary:
                {
                    var (symbol, precedence) = Operator(binary.Op);
                    return ($"{Print(binary.Left, precedence)} {symbol} {Print(binary.Right, precedence + 1)}", precedence);
                }
                case ModConditional conditional:
                    return ($"{Print(conditional.Condition, ConditionalOr)} ? {Print(conditional.WhenTrue, Conditional)} : {Print(conditional.WhenFalse, Conditional)}", Conditional);
                case ModCast cast:
                    return ($"({TypeName(cast.Type)}){Print(cast.Operand, Unary)}", Unary);
                case ModCall call:
                    return ($"{Function(call)}({string.Join(", ", call.Arguments.Select(Expression))})", Primary);
                default:
                    return ("/* unknown */ default", Primary);
            }
        }

        private static (string, int) Constant(ModConstant constant)
        {
            string text;
            switch (constant.Type)
            {
                case ModType.Bool:
                    return (constant.Value != 0 ? "true" : "false", Primary);
                case ModType.Int:
                    text = ((int)constant.Value).ToString(CultureInfo.InvariantCulture);
                    break;
                default:
                    float value = (float)constant.Value;
                    if (float.IsNaN(value))
                        return ("float.NaN", Primary);
                    if (float.IsInfinity(value))
                        return (value > 0 ? "float.PositiveInfinity" : "float.NegativeInfinity", Primary);
                    text = value.ToString("R", CultureInfo.InvariantCulture) + "f";
                    if (value == 0 && System.BitConverter.DoubleToInt64Bits(constant.Value) < 0)
                        text = "-0f";
                    break;
            }
            return (text, text.StartsWith("-", System.StringComparison.Ordinal) ? Unary : Primary);
        }

        private static (string, int) Operator(ModBinaryOp op) => op switch
        {
            ModBinaryOp.Add => ("+", Additive),
            ModBinaryOp.Subtract => ("-", Additive),
            ModBinaryOp.Multiply => ("*", Multiplicative),
            ModBinaryOp.Divide => ("/", Multiplicative),
            ModBinaryOp.Remainder => ("%", Multiplicative),
            ModBinaryOp.Less => ("<", Relational),
            ModBinaryOp.LessOrEqual => ("<=", Relational),
            ModBinaryOp.Greater => (">", Relational),
            ModBinaryOp.GreaterOrEqual => (">=", Relational),
            ModBinaryOp.Equal => ("==", Equality),
            ModBinaryOp.NotEqual => ("!=", Equality),
            ModBinaryOp.And => ("&&", ConditionalAnd),
            _ => ("||", ConditionalOr),
        };

        /// <summary>The function a call prints as: int min/max/abs are System.Math's, float math is KernelMath's.</summary>
        public static string Function(ModCall call)
        {
            if (call.Type == ModType.Int)
                return "global::System.Math." + call.Function;
            return KernelMath + call.Function switch
            {
                ModFunction.Min => "MinNaN",
                ModFunction.Max => "MaxNaN",
                var f => f.ToString(),
            };
        }

        private static string TableName(ModTableRead table) =>
            $"a.Mod.{(table.Type == ModType.Float ? "Float" : "Int")}Table{table.Slot}";

        /// <summary>i0 (rank 1), (long)i0 · Stride0 + i1 (rank 2), (long)i0 · Stride0 + (long)i1 · Stride1 + i2 (rank 3).</summary>
        private static string TableIndex(ModTableRead table)
        {
            string name = TableName(table);
            var i = table.Indices;
            return i.Count switch
            {
                1 => Expression(i[0]),
                2 => $"(long){Print(i[0], Unary)} * {name}Stride0 + {Print(i[1], Additive + 1)}",
                _ => $"(long){Print(i[0], Unary)} * {name}Stride0 + (long){Print(i[1], Unary)} * {name}Stride1 + {Print(i[2], Additive + 1)}",
            };
        }
    }
}
