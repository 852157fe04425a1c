using System;
using System.Collections.Generic;

namespace XFormers.Generators.Mods
{
    /// <summary>A table's contents for <see cref="ModEvaluator"/>: dense, row-major, as the kernels index it.</summary>
    internal sealed class ModTableValues
    {
        public ModTableValues(double[] data, long stride0 = 0, long stride1 = 0)
        {
            Data = data;
            Stride0 = stride0;
            Stride1 = stride1;
        }

        public double[] Data { get; }
        public long Stride0 { get; }
        public long Stride1 { get; }
    }

    /// <summary>The parameters and run-time arguments a mod is evaluated at.</summary>
    internal sealed class ModInputs
    {
        public double Score { get; set; }
        public int Batch { get; set; }
        public int Head { get; set; }
        public int Q { get; set; }
        public int Kv { get; set; }
        public int[] Ints { get; } = new int[ModLimits.Scalars];
        public double[] Floats { get; } = new double[ModLimits.Scalars];
        public Dictionary<int, ModTableValues> IntTables { get; } = new();
        public Dictionary<int, ModTableValues> FloatTables { get; } = new();
    }

    /// <summary>
    /// Runs a <see cref="ModBody"/> with float arithmetic in double precision and int arithmetic as C#'s (unchecked,
    /// truncating division): the reference the tests check the derivative and the writers against. Bools are 0 or 1.
    /// </summary>
    internal static class ModEvaluator
    {
        public static double Evaluate(ModBody body, ModInputs inputs)
        {
            var locals = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var statement in body.Statements)
            {
                switch (statement)
                {
                    case ModLet let:
                        locals[let.Local.Name] = Evaluate(let.Value, inputs, locals);
                        break;
                    case ModReturnIf returnIf when Evaluate(returnIf.Condition, inputs, locals) != 0:
                        return Evaluate(returnIf.Value, inputs, locals);
                    case ModReturn ret:
                        return Evaluate(ret.Value, inputs, locals);
                }
            }
            throw new InvalidOperationException("A mod body ends with a return.");
        }

        public static double Evaluate(ModExpr expression, ModInputs inputs, IReadOnlyDictionary<string, double> locals)
        {
            double Eval(ModExpr e) => Evaluate(e, inputs, locals);
            switch (expression)
            {
                case ModConstant constant:
                    return constant.Value;
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
                    return scalar.Type == ModType.Float ? inputs.Floats[scalar.Slot]
                        : scalar.Type == ModType.Bool ? (inputs.Ints[scalar.Slot] != 0 ? 1 : 0) : inputs.Ints[scalar.Slot];
                case ModTableRead table:
                {
                    var tables = table.Type == ModType.Float ? inputs.FloatTables : inputs.IntTables;
                    double outside = table.Type == ModType.Float ? double.NaN : 0;
                    if (!tables.TryGetValue(table.Slot, out var values))
                        return outside;
                    long index = TableIndex(table.Indices.Count, (long)Eval(table.Indices[0]),
                        table.Indices.Count > 1 ? (long)Eval(table.Indices[1]) : 0, table.Indices.Count > 2 ? (long)Eval(table.Indices[2]) : 0,
                        values.Stride0, values.Stride1);
                    return (ulong)index < (ulong)values.Data.Length ? values.Data[index] : outside;
                }
                case ModLocal local:
                    return locals[local.Name];
                case ModUnary unary:
                    return Unary(unary.Op, unary.Type, Eval(unary.Operand));
                case ModBinary binary:
                    return Binary(binary.Op, binary.Left.Type, Eval(binary.Left), Eval(binary.Right));
                case ModConditional conditional:
                    return Eval(conditional.Condition) != 0 ? Eval(conditional.WhenTrue) : Eval(conditional.WhenFalse);
                case ModCast cast:
                    return Cast(cast.Type, Eval(cast.Operand));
                case ModCall call:
                    return Call(call.Function, call.Type, Eval(call.Arguments[0]), call.Arguments.Count > 1 ? Eval(call.Arguments[1]) : 0);
                default:
                    throw new InvalidOperationException("Unknown mod expression " + expression.GetType().Name);
            }
        }

        /// <summary>Element (i0, i1, i2) of a table of rank 1 to 3: i0 · Stride0 + i1 · Stride1 + i2, its lower dims dropped.</summary>
        public static long TableIndex(int rank, long i0, long i1, long i2, long stride0, long stride1) => rank switch
        {
            1 => i0,
            2 => i0 * stride0 + i1,
            _ => i0 * stride0 + i1 * stride1 + i2,
        };

        public static double Unary(ModUnaryOp op, ModType type, double value) => op switch
        {
            ModUnaryOp.Not => value != 0 ? 0 : 1,
            _ when type == ModType.Int => unchecked(-(int)value),
            _ => -value,
        };

        /// <summary>A binary operator on operands of type <paramref name="operands"/>, with C#'s semantics.</summary>
        public static double Binary(ModBinaryOp op, ModType operands, double l, double r)
        {
            if (operands == ModType.Int)
            {
                int a = (int)l, b = (int)r;
                switch (op)
                {
                    case ModBinaryOp.Add: return unchecked(a + b);
                    case ModBinaryOp.Subtract: return unchecked(a - b);
                    case ModBinaryOp.Multiply: return unchecked(a * b);
                    case ModBinaryOp.Divide: return a == int.MinValue && b == -1 ? a : a / b;
                    case ModBinaryOp.Remainder: return b == -1 ? 0 : a % b;
                }
            }
            return op switch
            {
                ModBinaryOp.Add => l + r,
                ModBinaryOp.Subtract => l - r,
                ModBinaryOp.Multiply => l * r,
                ModBinaryOp.Divide => l / r,
                ModBinaryOp.Remainder => l % r,
                ModBinaryOp.Less => l < r ? 1 : 0,
                ModBinaryOp.LessOrEqual => l <= r ? 1 : 0,
                ModBinaryOp.Greater => l > r ? 1 : 0,
                ModBinaryOp.GreaterOrEqual => l >= r ? 1 : 0,
                ModBinaryOp.Equal => l == r ? 1 : 0,
                ModBinaryOp.NotEqual => l != r ? 1 : 0,
                ModBinaryOp.And => l != 0 && r != 0 ? 1 : 0,
                _ => l != 0 || r != 0 ? 1 : 0,
            };
        }

        /// <summary>int → float, or float → int truncating (NaN and out-of-range values give int.MinValue, as on x64).</summary>
        public static double Cast(ModType type, double value)
        {
            if (type == ModType.Float)
                return value;
            double truncated = Math.Truncate(value);
            return double.IsNaN(truncated) || truncated < int.MinValue || truncated > int.MaxValue ? int.MinValue : truncated;
        }

        public static double Call(ModFunction function, ModType type, double x, double y)
        {
            switch (function)
            {
                case ModFunction.Tanh: return Math.Tanh(x);
                case ModFunction.Exp: return Math.Exp(x);
                case ModFunction.Log: return Math.Log(x);
                case ModFunction.Sqrt: return Math.Sqrt(x);
                case ModFunction.Abs: return type == ModType.Int ? (x == int.MinValue ? x : Math.Abs(x)) : Math.Abs(x);
                case ModFunction.Min: return double.IsNaN(x) || double.IsNaN(y) ? double.NaN : Math.Min(x, y);
                case ModFunction.Max: return double.IsNaN(x) || double.IsNaN(y) ? double.NaN : Math.Max(x, y);
                case ModFunction.Pow: return Math.Pow(x, y);
                case ModFunction.Floor: return Math.Floor(x);
                default: return Math.Ceiling(x);
            }
        }
    }
}
