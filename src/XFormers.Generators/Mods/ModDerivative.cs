using System.Collections.Generic;
using System.Linq;
using XFormers.Generators.Models;

namespace XFormers.Generators.Mods
{
    /// <summary>
    /// d(score mod)/d(score) by the chain rule over the IR. A float local gets a derivative local beside it (<c>m_x</c> →
    /// <c>dm_x</c>); int and bool values, table reads and the arguments have derivative 0; a conditional takes the derivative
    /// of the branch it takes. Rules: tanh′ = 1 − tanh², exp′ = exp, log′ = 1/x, sqrt′ = 0.5/sqrt, abs′ = sign (0 at 0),
    /// min/max follow the comparison, pow(x, c)′ = c·pow(x, c − 1), floor′ = ceiling′ = 0, (a % b)′ = a′ − trunc(a/b)·b′.
    /// </summary>
    internal static class ModDerivative
    {
        private const string Prefix = "d";

        public static ModBody Derive(ModBody body)
        {
            var derivatives = new Dictionary<string, ModExpr>(System.StringComparer.Ordinal);
            var statements = new List<ModStatement>();
            foreach (var statement in body.Statements)
            {
                switch (statement)
                {
                    case ModLet let:
                        statements.Add(let);
                        if (let.Local.Type == ModType.Float)
                        {
                            var derivative = D(let.Value, derivatives);
                            if (derivative is ModConstant or ModLocal)
                            {
                                derivatives[let.Local.Name] = derivative;
                            }
                            else
                            {
                                var local = new ModLocal(ModType.Float, Prefix + let.Local.Name);
                                statements.Add(new ModLet(local, derivative));
                                derivatives[let.Local.Name] = local;
                            }
                        }
                        break;
                    case ModReturnIf returnIf:
                        statements.Add(new ModReturnIf(returnIf.Condition, D(returnIf.Value, derivatives)));
                        break;
                    case ModReturn ret:
                        statements.Add(new ModReturn(D(ret.Value, derivatives)));
                        break;
                }
            }
            return new ModBody(ModType.Float, new EquatableArray<ModStatement>(ModSimplifier.DropUnusedLets(statements)));
        }

        private static ModExpr D(ModExpr e, IReadOnlyDictionary<string, ModExpr> derivatives)
        {
            if (e.Type != ModType.Float)
                return ModConstant.FloatZero;
            ModExpr Dx(ModExpr x) => D(x, derivatives);
            switch (e)
            {
                case ModParameterRead { Parameter: ModParameter.Score }:
                    return ModConstant.FloatOne;
                case ModLocal local:
                    return derivatives.TryGetValue(local.Name, out var d) ? d : ModConstant.FloatZero;
                case ModUnary { Op: ModUnaryOp.Negate } unary:
                    return S.Neg(Dx(unary.Operand));
                case ModBinary binary:
                {
                    var (a, b) = (binary.Left, binary.Right);
                    var (da, db) = (Dx(a), Dx(b));
                    switch (binary.Op)
                    {
                        case ModBinaryOp.Add: return S.Add(da, db);
                        case ModBinaryOp.Subtract: return S.Sub(da, db);
                        case ModBinaryOp.Multiply: return S.Add(S.Mul(da, b), S.Mul(a, db));
                        case ModBinaryOp.Divide:
                            return S.IsZero(db) ? S.Div(da, b) : S.Div(S.Sub(S.Mul(da, b), S.Mul(a, db)), S.Mul(b, b));
                        case ModBinaryOp.Remainder:
                            // a % b = a − trunc(a / b)·b, and trunc(a / b) = (a − a % b) / b is piecewise constant.
                            return S.IsZero(db) ? da : S.Sub(da, S.Mul(S.Div(S.Sub(a, binary), b), db));
                        default:
                            return ModConstant.FloatZero;
                    }
                }
                case ModConditional conditional:
                    return S.Cond(conditional.Condition, Dx(conditional.WhenTrue), Dx(conditional.WhenFalse));
                case ModCall call:
                {
                    var x = call.Arguments[0];
                    var dx = Dx(x);
                    switch (call.Function)
                    {
                        case ModFunction.Tanh:
                            return S.Mul(S.Sub(ModConstant.FloatOne, S.Mul(call, call)), dx);
                        case ModFunction.Exp:
                            return S.Mul(call, dx);
                        case ModFunction.Log:
                            return S.Div(dx, x);
                        case ModFunction.Sqrt:
                            return S.Mul(S.Div(ModConstant.Float(0.5), call), dx);
                        case ModFunction.Abs:
                            return S.Cond(S.Compare(ModBinaryOp.Greater, x, ModConstant.FloatZero), dx,
                                S.Cond(S.Compare(ModBinaryOp.Less, x, ModConstant.FloatZero), S.Neg(dx), ModConstant.FloatZero));
                        case ModFunction.Min:
                            return S.Cond(S.Compare(ModBinaryOp.LessOrEqual, x, call.Arguments[1]), dx, Dx(call.Arguments[1]));
                        case ModFunction.Max:
                            return S.Cond(S.Compare(ModBinaryOp.GreaterOrEqual, x, call.Arguments[1]), dx, Dx(call.Arguments[1]));
                        case ModFunction.Pow:
                        {
                            double c = ((ModConstant)call.Arguments[1]).Value;
                            var power = S.Pow(x, c - 1);
                            return S.Mul(S.Mul(ModConstant.Float(c), power), dx);
                        }
                        default:
                            return ModConstant.FloatZero;
                    }
                }
                default:
                    return ModConstant.FloatZero;
            }
        }
    }
}
