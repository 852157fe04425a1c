using XFormers.Generators.Models;

namespace XFormers.Generators.Mods
{
    /// <summary>The three value types a mod computes with: C#'s <c>float</c>, <c>int</c> and <c>bool</c>.</summary>
    internal enum ModType
    {
        Float,
        Int,
        Bool,
    }

    /// <summary>The mod's parameters, by position: a score mod takes all five, a mask mod the last four.</summary>
    internal enum ModParameter
    {
        Score,
        Batch,
        Head,
        Q,
        Kv,
    }

    internal enum ModUnaryOp
    {
        /// <summary><c>-x</c> (float or int).</summary>
        Negate,
        /// <summary><c>!b</c>.</summary>
        Not,
    }

    internal enum ModBinaryOp
    {
        Add,
        Subtract,
        Multiply,
        /// <summary>C#'s <c>/</c>: an int quotient truncates toward zero.</summary>
        Divide,
        /// <summary>C#'s <c>%</c>: the remainder takes the dividend's sign (ints and floats).</summary>
        Remainder,
        Less,
        LessOrEqual,
        Greater,
        GreaterOrEqual,
        Equal,
        NotEqual,
        /// <summary><c>&amp;&amp;</c>: both sides are pure, so evaluating the right one always is allowed.</summary>
        And,
        /// <summary><c>||</c>.</summary>
        Or,
    }

    /// <summary>The calls a mod may make.</summary>
    internal enum ModFunction
    {
        /// <summary>MathF.Tanh.</summary>
        Tanh,
        /// <summary>MathF.Exp.</summary>
        Exp,
        /// <summary>MathF.Log (natural).</summary>
        Log,
        /// <summary>MathF.Sqrt.</summary>
        Sqrt,
        /// <summary>MathF.Abs or Math.Abs (float or int).</summary>
        Abs,
        /// <summary>MathF.Min or Math.Min (float or int); a NaN operand gives NaN.</summary>
        Min,
        /// <summary>MathF.Max or Math.Max (float or int); a NaN operand gives NaN.</summary>
        Max,
        /// <summary>MathF.Pow with a constant exponent (the second argument is always a <see cref="ModConstant"/>).</summary>
        Pow,
        /// <summary>MathF.Floor.</summary>
        Floor,
        /// <summary>MathF.Ceiling.</summary>
        Ceiling,
    }

    /// <summary>
    /// A mod's expression, lowered from C#: plain records with value equality, so a <see cref="ModsModel"/> holding them
    /// caches incrementally. Operands of a binary operator have one type (implicit conversions are explicit <see cref="ModCast"/>s).
    /// </summary>
    internal abstract record ModExpr(ModType Type);

    /// <summary>A constant; a float or int is held exactly by the double, a bool is 0 or 1.</summary>
    internal sealed record ModConstant(ModType Type, double Value) : ModExpr(Type)
    {
        public static ModConstant Float(double value) => new(ModType.Float, (float)value);
        public static ModConstant Int(int value) => new(ModType.Int, value);
        public static ModConstant Bool(bool value) => new(ModType.Bool, value ? 1 : 0);
        public static readonly ModConstant FloatZero = Float(0), FloatOne = Float(1);
    }

    /// <summary>One of the mod's parameters (<c>score</c> is float, the others int).</summary>
    internal sealed record ModParameterRead(ModParameter Parameter) : ModExpr(Parameter == ModParameter.Score ? ModType.Float : ModType.Int);

    /// <summary>
    /// A scalar field of the run-time arguments: <c>args.Window</c>. An int or bool field reads int slot <paramref name="Slot"/>
    /// (a bool as 0 or 1), a float field float slot <paramref name="Slot"/>.
    /// </summary>
    internal sealed record ModScalarRead(ModType Type, int Slot, string Field) : ModExpr(Type);

    /// <summary>
    /// An element of a table field: <c>args.DocId[q]</c>, <c>args.Slopes[head, q]</c>; int or float table
    /// <paramref name="Slot"/>, as many int indices as the table's rank (1 to 3). Outside the table: 0 or NaN.
    /// </summary>
    internal sealed record ModTableRead(ModType Type, int Slot, string Field, EquatableArray<ModExpr> Indices) : ModExpr(Type);

    /// <summary>A local bound earlier by a <see cref="ModLet"/>; <paramref name="Name"/> is the name the writers print.</summary>
    internal sealed record ModLocal(ModType Type, string Name) : ModExpr(Type);

    internal sealed record ModUnary(ModType Type, ModUnaryOp Op, ModExpr Operand) : ModExpr(Type);

    /// <summary>A binary operator; the operands have the same type, the result is that type or bool (comparisons, &amp;&amp;, ||).</summary>
    internal sealed record ModBinary(ModType Type, ModBinaryOp Op, ModExpr Left, ModExpr Right) : ModExpr(Type);

    /// <summary><c>c ? a : b</c>.</summary>
    internal sealed record ModConditional(ModType Type, ModExpr Condition, ModExpr WhenTrue, ModExpr WhenFalse) : ModExpr(Type);

    /// <summary>int → float (exact rounding to nearest) or float → int (truncation), the only conversions C# allows among the three.</summary>
    internal sealed record ModCast(ModType Type, ModExpr Operand) : ModExpr(Type);

    internal sealed record ModCall(ModType Type, ModFunction Function, EquatableArray<ModExpr> Arguments) : ModExpr(Type);

    /// <summary>One statement of a mod's body.</summary>
    internal abstract record ModStatement;

    /// <summary><c>float x = value;</c>: a local assigned once.</summary>
    internal sealed record ModLet(ModLocal Local, ModExpr Value) : ModStatement;

    /// <summary><c>if (condition) return value;</c> (an <c>else</c> becomes the statements after it).</summary>
    internal sealed record ModReturnIf(ModExpr Condition, ModExpr Value) : ModStatement;

    /// <summary><c>return value;</c>: the body's last statement.</summary>
    internal sealed record ModReturn(ModExpr Value) : ModStatement;

    /// <summary>
    /// A mod's body: lets and early returns in source order, ending with one <see cref="ModReturn"/>. The C# writer prints
    /// it as written (so a guard keeps an int division after it from running); the PTX writer evaluates every statement
    /// (they are pure and its reads stay in bounds) and folds the early returns into selects.
    /// </summary>
    internal sealed record ModBody(ModType Type, EquatableArray<ModStatement> Statements)
    {
        public ModExpr Result => ((ModReturn)Statements[Statements.Count - 1]).Value;
    }
}
