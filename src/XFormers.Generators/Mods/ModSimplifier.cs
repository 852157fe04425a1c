using System.Collections.Generic;
using System.Linq;
using XFormers.Generators.Models;

namespace XFormers.Generators.Mods
{
    /// <summary>
    /// Smart constructors that fold constants and drop neutral terms (0·x, 1·x, x + 0, x − 0, x / 1, −−x, a decided ?:),
    /// so a derivative reads like one written by hand. Folding follows C#: float results are rounded to float (a float
    /// quotient folds only when exact), an int
    /// division by a constant zero is left for the kernel. 0·x folds to 0 even where x could be infinite or NaN: the
    /// derivative's convention for a term that does not depend on the score.
    /// </summary>
    internal static class S
    {
        public static bool IsZero(ModExpr e) => e is ModConstant { Value: 0 };

        private static bool IsOne(ModExpr e) => e is ModConstant { Value: 1 };

        private static ModConstant Fold(ModType type, double value) =>
            type == ModType.Float ? ModConstant.Float(value) : new ModConstant(type, value);

        public static ModExpr Neg(ModExpr x) => x switch
        {
            ModConstant c => Fold(c.Type, ModEvaluator.Unary(ModUnaryOp.Negate, c.Type, c.Value)),
            ModUnary { Op: ModUnaryOp.Negate } u => u.Operand,
            _ => new ModUnary(x.Type, ModUnaryOp.Negate, x),
        };

        public static ModExpr Add(ModExpr a, ModExpr b)
        {
            if (IsZero(a)) return b;
            if (IsZero(b)) return a;
            if (b is ModUnary { Op: ModUnaryOp.Negate } nb) return Sub(a, nb.Operand);
            return Arithmetic(ModBinaryOp.Add, a, b);
        }

        public static ModExpr Sub(ModExpr a, ModExpr b)
        {
            if (IsZero(b)) return a;
            if (IsZero(a)) return Neg(b);
            if (b is ModUnary { Op: ModUnaryOp.Negate } nb) return Add(a, nb.Operand);
            return Arithmetic(ModBinaryOp.Subtract, a, b);
        }

        public static ModExpr Mul(ModExpr a, ModExpr b)
        {
            if (IsZero(a) || IsZero(b)) return Fold(a.Type, 0);
            if (IsOne(a)) return b;
            if (IsOne(b)) return a;
            if (a is ModConstant { Value: -1 }) return Neg(b);
            if (b is ModConstant { Value: -1 }) return Neg(a);
            // x · (1 / c) reads better as x / c.
            if (b is ModBinary { Op: ModBinaryOp.Divide, Left: ModConstant { Value: 1 } } rb) return Div(a, rb.Right);
            if (a is ModBinary { Op: ModBinaryOp.Divide, Left: ModConstant { Value: 1 } } ra) return Div(b, ra.Right);
            return Arithmetic(ModBinaryOp.Multiply, a, b);
        }

        public static ModExpr Div(ModExpr a, ModExpr b)
        {
            if (IsOne(b)) return a;
            if (IsZero(a) && a.Type == ModType.Float) return a;
            return Arithmetic(ModBinaryOp.Divide, a, b);
        }

        private static ModExpr Arithmetic(ModBinaryOp op, ModExpr a, ModExpr b)
        {
            if (a is ModConstant ca && b is ModConstant cb && !(a.Type == ModType.Int && op is ModBinaryOp.Divide or ModBinaryOp.Remainder && cb.Value == 0))
            {
                var folded = Fold(a.Type, ModEvaluator.Binary(op, a.Type, ca.Value, cb.Value));
                // A float quotient folds only when exact: 1f / 30f stays readable (and as precise as the source).
                if (!(a.Type == ModType.Float && op == ModBinaryOp.Divide && folded.Value * cb.Value != ca.Value))
                    return folded;
            }
            return new ModBinary(a.Type, op, a, b);
        }

        public static ModExpr Compare(ModBinaryOp op, ModExpr a, ModExpr b) =>
            a is ModConstant ca && b is ModConstant cb
                ? ModConstant.Bool(ModEvaluator.Binary(op, a.Type, ca.Value, cb.Value) != 0)
                : new ModBinary(ModType.Bool, op, a, b);

        public static ModExpr Cond(ModExpr condition, ModExpr whenTrue, ModExpr whenFalse)
        {
            if (condition is ModConstant c) return c.Value != 0 ? whenTrue : whenFalse;
            if (whenTrue.Equals(whenFalse)) return whenTrue;
            return new ModConditional(whenTrue.Type, condition, whenTrue, whenFalse);
        }

        /// <summary>pow(x, c): C#'s MathF.Pow(x, 0) is 1 and MathF.Pow(x, 1) is x for every x, NaN included.</summary>
        public static ModExpr Pow(ModExpr x, double c)
        {
            float exponent = (float)c;
            if (exponent == 0) return ModConstant.FloatOne;
            if (exponent == 1) return x;
            if (x is ModConstant cx) return ModConstant.Float(System.Math.Pow(cx.Value, exponent));
            return new ModCall(ModType.Float, ModFunction.Pow, new EquatableArray<ModExpr>(new[] { x, ModConstant.Float(exponent) }));
        }
    }

    internal static class ModSimplifier
    {
        /// <summary>The statements without the lets no later statement reads.</summary>
        public static List<ModStatement> DropUnusedLets(List<ModStatement> statements)
        {
            var used = new HashSet<string>(System.StringComparer.Ordinal);
            var kept = new List<ModStatement>();
            for (int i = statements.Count - 1; i >= 0; i--)
            {
                var statement = statements[i];
                if (statement is ModLet let && !used.Contains(let.Local.Name))
                    continue;
                kept.Add(statement);
                foreach (var expression in Expressions(statement))
                    CollectLocals(expression, used);
            }
            kept.Reverse();
            return kept;
        }

        private static IEnumerable<ModExpr> Expressions(ModStatement statement) => statement switch
        {
            ModLet let => new[] { let.Value },
            ModReturnIf returnIf => new[] { returnIf.Condition, returnIf.Value },
            ModReturn ret => new[] { ret.Value },
            _ => Enumerable.Empty<ModExpr>(),
        };

        private static void CollectLocals(ModExpr expression, HashSet<string> used)
        {
            foreach (var e in ModWalk.Descendants(expression))
            {
                if (e is ModLocal local)
                    used.Add(local.Name);
            }
        }
    }

    internal static class ModWalk
    {
        /// <summary>The expression and every expression under it.</summary>
        public static IEnumerable<ModExpr> Descendants(ModExpr expression)
        {
            var stack = new Stack<ModExpr>();
            stack.Push(expression);
            while (stack.Count > 0)
            {
                var e = stack.Pop();
                yield return e;
                foreach (var child in Children(e))
                    stack.Push(child);
            }
        }

        public static IEnumerable<ModExpr> Descendants(ModBody body) =>
            body.Statements.SelectMany(s => s switch
            {
                ModLet let => Descendants(let.Value),
                ModReturnIf returnIf => Descendants(returnIf.Condition).Concat(Descendants(returnIf.Value)),
                ModReturn ret => Descendants(ret.Value),
                _ => Enumerable.Empty<ModExpr>(),
            });

        /// <summary>The expressions directly under <paramref name="e"/>.</summary>
        public static IEnumerable<ModExpr> Children(ModExpr e) => e switch
        {
            ModTableRead table => table.Indices,
            ModUnary unary => new[] { unary.Operand },
            ModBinary binary => new[] { binary.Left, binary.Right },
            ModConditional conditional => new[] { conditional.Condition, conditional.WhenTrue, conditional.WhenFalse },
            ModCast cast => new[] { cast.Operand },
            ModCall call => call.Arguments,
            _ => Enumerable.Empty<ModExpr>(),
        };
    }
}
