using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using XFormers.Generators.Diagnostics;
using XFormers.Generators.Models;

namespace XFormers.Generators.Mods
{
    /// <summary>Which attribute property names the mod.</summary>
    internal enum ModKind
    {
        Score,
        Mask,
    }

    /// <summary>A mod method the parser found, with a usable signature: what the lowering and the argument layout need.</summary>
    internal sealed class ResolvedMod
    {
        public ResolvedMod(ModKind kind, IMethodSymbol method, MethodDeclarationSyntax syntax, IParameterSymbol? args, ParameterSyntax? argsSyntax)
        {
            Kind = kind;
            Method = method;
            Syntax = syntax;
            Args = args;
            ArgsSyntax = argsSyntax;
        }

        public ModKind Kind { get; }
        public IMethodSymbol Method { get; }
        public MethodDeclarationSyntax Syntax { get; }
        /// <summary>The trailing <c>in TArgs args</c> parameter, or null.</summary>
        public IParameterSymbol? Args { get; }
        public ParameterSyntax? ArgsSyntax { get; }
        public string Name => Method.Name;
    }

    /// <summary>A table read, kept until every mod is lowered: a table must have one rank in all of them (XFA0023).</summary>
    internal sealed record ModTableUse(string Field, int Rank, LocationInfo? Location);

    /// <summary>
    /// Finds a mod method of the declaring type and lowers its body to <see cref="ModBody"/>: expression bodies, and block
    /// bodies of local declarations, <c>if (c) return a;</c> and a final <c>return</c>. Anything else is XFA0019 on the
    /// offending node; nothing throws.
    /// </summary>
    internal static class ModParser
    {
        /// <summary>The parameters a mod takes before the optional <c>in TArgs args</c>.</summary>
        public static int FixedParameters(ModKind kind) => kind == ModKind.Score ? 5 : 4;

        private static string ExpectedSignature(ModKind kind, string name) => kind == ModKind.Score
            ? $"static float {name}(float score, int batch, int head, int q, int kv)', optionally with a trailing 'in TArgs args"
            : $"static bool {name}(int batch, int head, int q, int kv)', optionally with a trailing 'in TArgs args";

        /// <summary>
        /// The method <paramref name="name"/> names in <paramref name="declaringType"/>, checked: one method (XFA0015), in the
        /// file of the [Attention] method (XFA0018), with a body (XFA0017) and the kind's signature (XFA0016). Null after any error.
        /// </summary>
        public static ResolvedMod? Resolve(
            ModKind kind, string? name, ExpressionSyntax? argument, INamedTypeSymbol declaringType, SyntaxTree attentionTree,
            List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
        {
            string property = kind == ModKind.Score ? "ScoreMod" : "MaskMod";
            var at = LocationInfo.From(argument);
            var candidates = string.IsNullOrEmpty(name)
                ? new List<IMethodSymbol>()
                : declaringType.GetMembers(name!).OfType<IMethodSymbol>().Where(m => m.MethodKind == MethodKind.Ordinary).ToList();
            if (candidates.Count != 1)
            {
                string problem = candidates.Count == 0 ? "names no method of '" + declaringType.Name + "'" : $"names {candidates.Count} overloads";
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModNotFound, at, property, name ?? "", problem, declaringType.Name));
                return null;
            }

            // A partial method's implementing part: its body, and the parameters that body binds to.
            var method = candidates[0].PartialImplementationPart ?? candidates[0];
            var syntax = method.DeclaringSyntaxReferences.Select(r => r.GetSyntax(cancellationToken)).OfType<MethodDeclarationSyntax>().FirstOrDefault();
            if (syntax is null)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModWithoutBody, at, method.Name));
                return null;
            }
            if (syntax.SyntaxTree != attentionTree)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModInOtherFile, at, "Mod", method.Name, property));
                return null;
            }

            int before = diagnostics.Count;
            var identifier = LocationInfo.From(syntax.Identifier.GetLocation());
            string expected = ExpectedSignature(kind, method.Name);
            void Wrong(LocationInfo? location, string problem) =>
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModSignature, location, method.Name, problem, expected));

            if (syntax.Body is null && syntax.ExpressionBody is null)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModWithoutBody, identifier, method.Name));
            if (!method.IsStatic)
                Wrong(identifier, "is not static");
            if (method.IsGenericMethod)
                Wrong(identifier, "is generic");
            var returnType = kind == ModKind.Score ? SpecialType.System_Single : SpecialType.System_Boolean;
            if (method.ReturnType.SpecialType != returnType || method.RefKind != RefKind.None)
                Wrong(LocationInfo.From(syntax.ReturnType), "returns '" + (method.RefKind == RefKind.None ? "" : "ref ") + method.ReturnType.ToDisplayString() + "'");

            int fixedCount = FixedParameters(kind);
            var parameters = method.Parameters;
            IParameterSymbol? args = null;
            ParameterSyntax? argsSyntax = null;
            if (parameters.Length < fixedCount || parameters.Length > fixedCount + 1)
            {
                Wrong(LocationInfo.From(syntax.ParameterList), $"takes {parameters.Length} parameter(s)");
            }
            else
            {
                for (int i = 0; i < fixedCount; i++)
                {
                    var expectedType = kind == ModKind.Score && i == 0 ? SpecialType.System_Single : SpecialType.System_Int32;
                    var p = parameters[i];
                    if (p.Type.SpecialType != expectedType || p.RefKind != RefKind.None || p.IsParams)
                        Wrong(LocationInfo.From(ParameterSyntaxOf(syntax, i)), $"takes '{p}' as parameter {i + 1}");
                }
                if (parameters.Length == fixedCount + 1)
                {
                    args = parameters[fixedCount];
                    argsSyntax = ParameterSyntaxOf(syntax, fixedCount);
                    bool isStruct = args.Type.TypeKind == TypeKind.Struct && args.Type.SpecialType == SpecialType.None
                        && args.Type.OriginalDefinition.SpecialType != SpecialType.System_Nullable_T && !args.Type.IsRefLikeType;
                    if (!isStruct || args.RefKind is not (RefKind.None or RefKind.In) || args.IsParams)
                        Wrong(LocationInfo.From(argsSyntax), $"takes '{args}' as its arguments: they are a struct of your own, passed 'in' or by value");
                }
            }
            return diagnostics.Count == before ? new ResolvedMod(kind, method, syntax, args, argsSyntax) : null;
        }

        private static ParameterSyntax? ParameterSyntaxOf(MethodDeclarationSyntax syntax, int index) =>
            index < syntax.ParameterList.Parameters.Count ? syntax.ParameterList.Parameters[index] : null;

        /// <summary>
        /// The mod's body as IR, or null after an error (each reported once, on the node). <paramref name="fields"/> maps the
        /// argument struct's fields (by name) to their slots; table reads are added to <paramref name="tableUses"/>.
        /// </summary>
        public static ModBody? Lower(
            ResolvedMod mod, SemanticModel model, IReadOnlyDictionary<string, ModField> fields, List<ModTableUse> tableUses,
            List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
        {
            var lowering = new Lowering(mod, model, fields, tableUses, diagnostics, cancellationToken);
            return lowering.Body();
        }

        private sealed class Lowering
        {
            private readonly ResolvedMod mod;
            private readonly SemanticModel model;
            private readonly IReadOnlyDictionary<string, ModField> fields;
            private readonly List<ModTableUse> tableUses;
            private readonly List<DiagnosticInfo> diagnostics;
            private readonly CancellationToken cancellationToken;
            private readonly Dictionary<ILocalSymbol, ModLocal> locals = new(SymbolEqualityComparer.Default);
            private readonly HashSet<string> localNames = new(StringComparer.Ordinal);
            private readonly int errorsBefore;

            public Lowering(ResolvedMod mod, SemanticModel model, IReadOnlyDictionary<string, ModField> fields, List<ModTableUse> tableUses,
                List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
            {
                this.mod = mod;
                this.model = model;
                this.fields = fields;
                this.tableUses = tableUses;
                this.diagnostics = diagnostics;
                this.cancellationToken = cancellationToken;
                errorsBefore = diagnostics.Count;
            }

            private ModType ResultType => mod.Kind == ModKind.Score ? ModType.Float : ModType.Bool;

            public ModBody? Body()
            {
                var statements = new List<ModStatement>();
                var syntax = mod.Syntax;
                if (ForbiddenConstructs(syntax))
                    return null;
                if (syntax.ExpressionBody is { } arrow)
                {
                    var value = Lower(arrow.Expression);
                    if (value is not null)
                        statements.Add(new ModReturn(value));
                }
                else if (syntax.Body is { } block)
                {
                    Statements(block.Statements, 0, statements);
                }

                if (diagnostics.Count > errorsBefore)
                    return null;
                if (statements.Count == 0 || statements[statements.Count - 1] is not ModReturn)
                {
                    Unsupported(syntax.Body?.CloseBraceToken.GetLocation(), "}", "end the body with 'return …;'");
                    return null;
                }
                return new ModBody(ResultType, new EquatableArray<ModStatement>(statements));
            }

            /// <summary>Lowers <paramref name="list"/> from <paramref name="start"/>, stopping after a return.</summary>
            private void Statements(SyntaxList<StatementSyntax> list, int start, List<ModStatement> output)
            {
                for (int i = start; i < list.Count; i++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (Statement(list[i], output))
                        return;
                }
            }

            /// <summary>Lowers one statement; true when it returns on every path (what follows is unreachable).</summary>
            private bool Statement(StatementSyntax statement, List<ModStatement> output)
            {
                switch (statement)
                {
                    case ReturnStatementSyntax { Expression: { } expression }:
                    {
                        var value = Lower(expression);
                        if (value is not null)
                            output.Add(new ModReturn(value));
                        return true;
                    }
                    case LocalDeclarationStatementSyntax local:
                        LocalDeclaration(local, output);
                        return false;
                    case IfStatementSyntax ifStatement:
                    {
                        var condition = Lower(ifStatement.Condition);
                        var value = ReturnedValue(ifStatement.Statement);
                        if (condition is not null && value is not null)
                            output.Add(new ModReturnIf(condition, value));
                        // `else S` runs S when the condition is false: the statements after an early return.
                        return ifStatement.Else is { } elseClause && Statement(elseClause.Statement, output);
                    }
                    case BlockSyntax { Statements.Count: 1 } block when block.Statements[0] is ReturnStatementSyntax:
                        return Statement(block.Statements[0], output);
                    default:
                        UnsupportedStatement(statement);
                        return true;
                }
            }

            /// <summary>The value of <c>return x;</c> or <c>{ return x; }</c>, the branch of an <c>if</c>.</summary>
            private ModExpr? ReturnedValue(StatementSyntax statement)
            {
                if (statement is BlockSyntax { Statements.Count: 1 } block)
                    statement = block.Statements[0];
                if (statement is ReturnStatementSyntax { Expression: { } expression })
                    return Lower(expression);
                Unsupported(statement.GetLocation(), statement, "the branch of an 'if' is one 'return …;'; declare its locals before the 'if'");
                return null;
            }

            private void LocalDeclaration(LocalDeclarationStatementSyntax statement, List<ModStatement> output)
            {
                if (statement.IsConst)
                    return; // its uses are constants
                if (statement.UsingKeyword != default || statement.AwaitKeyword != default || statement.Declaration.Type is RefTypeSyntax)
                {
                    Unsupported(statement.GetLocation(), statement, "declare plain locals: 'float x = …;'");
                    return;
                }
                foreach (var declarator in statement.Declaration.Variables)
                {
                    if (model.GetDeclaredSymbol(declarator, cancellationToken) is not ILocalSymbol symbol)
                        continue; // the compiler reports it
                    if (declarator.Initializer is null)
                    {
                        Unsupported(declarator.GetLocation(), declarator, "give the local its value where it is declared: locals are assigned once");
                        continue;
                    }
                    var type = TypeOf(symbol.Type);
                    if (type is null)
                    {
                        Unsupported(statement.Declaration.Type.GetLocation(), statement.Declaration.Type, $"locals are float, int or bool, not '{symbol.Type.ToDisplayString()}'");
                        continue;
                    }
                    var value = Lower(declarator.Initializer.Value);
                    if (value is null)
                        continue;
                    string name = "m_" + symbol.Name;
                    for (int n = 2; !localNames.Add(name); n++)
                        name = "m_" + symbol.Name + "_" + n;
                    var local = new ModLocal(type.Value, name);
                    locals[symbol] = local;
                    output.Add(new ModLet(local, value));
                }
            }

            /// <summary>
            /// Reports the constructs no mod may hold (loops, assignments, ++ and --, new, lambdas, local functions, throw, this)
            /// wherever they are, each on its own node and nothing inside it: they would otherwise surface as a less precise
            /// error around them (a lambda as the type of the local it is assigned to). True when any was found.
            /// </summary>
            private bool ForbiddenConstructs(MethodDeclarationSyntax syntax)
            {
                bool found = false;
                var pending = new Stack<SyntaxNode>();
                SyntaxNode? root = (SyntaxNode?)syntax.Body ?? syntax.ExpressionBody;
                if (root is not null)
                    pending.Push(root);
                while (pending.Count > 0)
                {
                    var node = pending.Pop();
                    string? hint = node switch
                    {
                        ForStatementSyntax or ForEachStatementSyntax or WhileStatementSyntax or DoStatementSyntax =>
                            "loops: a mod runs once per score; write the result as a formula, or precompute it into a table of the arguments",
                        AssignmentExpressionSyntax => "assignments: bind a new local instead ('var y = x + 1;'): each local is assigned once, where it is declared",
                        PrefixUnaryExpressionSyntax or PostfixUnaryExpressionSyntax when node.Kind() is SyntaxKind.PreIncrementExpression
                            or SyntaxKind.PreDecrementExpression or SyntaxKind.PostIncrementExpression or SyntaxKind.PostDecrementExpression =>
                            "++ and --: bind 'x + 1' to a new local instead",
                        BaseObjectCreationExpressionSyntax or ArrayCreationExpressionSyntax or ImplicitArrayCreationExpressionSyntax
                            or StackAllocArrayCreationExpressionSyntax or CollectionExpressionSyntax or AnonymousObjectCreationExpressionSyntax =>
                            "new: mods allocate nothing; pass tables in the arguments",
                        AnonymousFunctionExpressionSyntax => "lambdas: write the expression inline",
                        LocalFunctionStatementSyntax => "local functions: write the expression inline",
                        ThrowExpressionSyntax or ThrowStatementSyntax => ThrowHint,
                        ThisExpressionSyntax or BaseExpressionSyntax => "this: mods are static; read run-time values from the arguments parameter",
                        _ => null,
                    };
                    if (hint is not null)
                    {
                        Unsupported(node.GetLocation(), node, hint);
                        found = true;
                        continue;
                    }
                    foreach (var child in node.ChildNodes().Reverse())
                        pending.Push(child);
                }
                return found;
            }

            private void UnsupportedStatement(StatementSyntax statement)
            {
                switch (statement)
                {
                    case ExpressionStatementSyntax expression:
                        // A call: the expression itself says what is wrong (assignments and ++ are found before lowering).
                        if (Lower(expression.Expression) is not null)
                            Unsupported(expression.GetLocation(), expression, "an expression statement does nothing here; return it or bind it to a local");
                        break;
                    case SwitchStatementSyntax:
                        Unsupported(statement.GetLocation(), statement, "switch: write 'if (…) return …;' or '?:'");
                        break;
                    case IfStatementSyntax or BlockSyntax:
                        Unsupported(statement.GetLocation(), statement, "nested blocks: a branch is one 'return …;'");
                        break;
                    case ReturnStatementSyntax:
                        break; // `return;` is the compiler's error
                    default:
                        Unsupported(statement.GetLocation(), statement, "mod bodies hold local declarations, 'if (…) return …;' and a final 'return …;'");
                        break;
                }
            }

            private const string ThrowHint = "throw: return a value instead (a mask mod returns false to drop a score)";

            private const string CallHint =
                "calls: use MathF.Tanh, Exp, Log, Sqrt, Abs, Min, Max, Floor, Ceiling, MathF.Pow with a constant exponent, or Math.Abs, Min, Max";

            private const string ExpressionHint =
                "mods use arithmetic, comparisons, &&, ||, !, ?:, casts between int and float, locals, constants, their parameters, " +
                "the fields of their arguments and the supported MathF calls";

            /// <summary>The expression as IR, converted to the type C# converts it to; null after an error.</summary>
            private ModExpr? Lower(ExpressionSyntax expression)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var info = model.GetTypeInfo(expression, cancellationToken);
                var target = info.ConvertedType ?? info.Type;

                var constant = model.GetConstantValue(expression, cancellationToken);
                if (constant.HasValue)
                    return Constant(expression, constant.Value, target);

                var value = LowerCore(expression, info.Type);
                if (value is null)
                    return null;
                var targetType = TypeOf(target);
                if (targetType == value.Type)
                    return value;
                if (value.Type == ModType.Int && targetType == ModType.Float)
                    return new ModCast(ModType.Float, value);
                return UnsupportedType(expression, target);
            }

            private ModExpr? Constant(ExpressionSyntax expression, object? value, ITypeSymbol? type)
            {
                // A constant declared in another file could change without this one: the kernels would go stale.
                foreach (var name in expression.DescendantNodesAndSelf().OfType<IdentifierNameSyntax>())
                {
                    var symbol = model.GetSymbolInfo(name, cancellationToken).Symbol;
                    if (symbol is IFieldSymbol { IsConst: true } or ILocalSymbol { IsConst: true }
                        && symbol.Locations.Any(l => l.IsInSource && l.SourceTree != expression.SyntaxTree))
                    {
                        SyntaxNode at = name.Parent is MemberAccessExpressionSyntax access && access.Name == name ? access : name;
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModInOtherFile, LocationInfo.From(at), "Constant", symbol.Name, mod.Name));
                        return null;
                    }
                }
                switch (TypeOf(type))
                {
                    case ModType.Float when value is float or int or double:
                        return ModConstant.Float(Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture));
                    case ModType.Int when value is int i:
                        return ModConstant.Int(i);
                    case ModType.Bool when value is bool b:
                        return ModConstant.Bool(b);
                    default:
                        return UnsupportedType(expression, type);
                }
            }

            private ModExpr? LowerCore(ExpressionSyntax expression, ITypeSymbol? type)
            {
                switch (expression)
                {
                    case ParenthesizedExpressionSyntax parenthesized:
                        return Lower(parenthesized.Expression);
                    case IdentifierNameSyntax or MemberAccessExpressionSyntax:
                        return Name(expression, type);
                    case ElementAccessExpressionSyntax element:
                        return TableRead(element, type);
                    case PrefixUnaryExpressionSyntax unary when unary.IsKind(SyntaxKind.UnaryMinusExpression)
                        || unary.IsKind(SyntaxKind.UnaryPlusExpression) || unary.IsKind(SyntaxKind.LogicalNotExpression):
                        return Unary(unary, type);
                    case BinaryExpressionSyntax binary when BinaryOp(binary.Kind()) is { } op:
                        return Binary(binary, op, type);
                    case ConditionalExpressionSyntax conditional:
                        return Conditional(conditional, type);
                    case CastExpressionSyntax cast:
                        return Cast(cast, type);
                    case InvocationExpressionSyntax invocation:
                        return Call(invocation, type);
                    case CheckedExpressionSyntax:
                        return Unsupported(expression, "checked and unchecked: mods compute with C#'s default (unchecked) int arithmetic");
                    case LiteralExpressionSyntax or InterpolatedStringExpressionSyntax:
                        return UnsupportedType(expression, type);
                    default:
                        return Unsupported(expression, ExpressionHint);
                }
            }

            private ModExpr? Name(ExpressionSyntax expression, ITypeSymbol? type)
            {
                var symbol = model.GetSymbolInfo(expression, cancellationToken).Symbol;
                switch (symbol)
                {
                    case IParameterSymbol parameter when SymbolEqualityComparer.Default.Equals(parameter, mod.Args):
                        return Unsupported(expression, "the arguments as a whole: read one of their fields, like 'args.Window'");
                    case IParameterSymbol parameter when SymbolEqualityComparer.Default.Equals(parameter.ContainingSymbol, mod.Method)
                        && parameter.Ordinal < FixedParameters(mod.Kind):
                        return new ModParameterRead((ModParameter)(parameter.Ordinal + (mod.Kind == ModKind.Score ? 0 : 1)));
                    case ILocalSymbol local when locals.TryGetValue(local, out var bound):
                        return bound;
                    case IFieldSymbol field when ArgsField(expression, field) is { } slot:
                        if (slot.IsTable)
                            return Unsupported(expression, $"a table as a whole: index it, like '{expression}[q]'");
                        return new ModScalarRead(slot.Kind == ModFieldKind.Float ? ModType.Float : slot.Kind == ModFieldKind.Bool ? ModType.Bool : ModType.Int, slot.Slot, slot.Name);
                    case IFieldSymbol when ArgsReceiver(expression):
                        return null; // a field without a slot: its type is reported on the field
                    case IFieldSymbol field:
                        return Unsupported(expression, $"field '{field.Name}' is not const: only constants and the fields of the arguments parameter reach the kernels; make it const or pass it in the arguments");
                    case IPropertySymbol property:
                        return Unsupported(expression, $"property '{property.Name}': read a const or a field of the arguments parameter");
                    default:
                        return Unsupported(expression, ExpressionHint);
                }
            }

            /// <summary>Whether the expression is <c>args.Something</c> on the mod's arguments parameter.</summary>
            private bool ArgsReceiver(ExpressionSyntax expression) =>
                mod.Args is not null && expression is MemberAccessExpressionSyntax { Expression: var receiver }
                && SymbolEqualityComparer.Default.Equals(model.GetSymbolInfo(receiver, cancellationToken).Symbol, mod.Args);

            /// <summary>The slot of <c>args.Field</c>, or null when the expression is not such a read (or the field has no slot).</summary>
            private ModField? ArgsField(ExpressionSyntax expression, IFieldSymbol field) =>
                ArgsReceiver(expression) && fields.TryGetValue(field.Name, out var slot) ? slot : null;

            private ModExpr? TableRead(ElementAccessExpressionSyntax element, ITypeSymbol? type)
            {
                var field = model.GetSymbolInfo(element.Expression, cancellationToken).Symbol as IFieldSymbol;
                var slot = field is null ? null : ArgsField(element.Expression, field);
                if (slot is not { IsTable: true })
                {
                    if (field is not null && ArgsReceiver(element.Expression) && slot is null)
                        return null; // reported on the field
                    if (field is null && Lower(element.Expression) is null)
                        return null; // what is indexed is wrong already
                    return Unsupported(element, "indexing: only tables of the arguments (Tensor<int> and Tensor<float> fields) can be indexed, like 'args.DocId[q]'");
                }
                var arguments = element.ArgumentList.Arguments;
                if (arguments.Count > ModLimits.MaxRank)
                    return Unsupported(element, "tables have rank 1 to 3: index with one to three ints");
                var indices = new List<ModExpr>();
                foreach (var argument in arguments)
                {
                    if (argument.NameColon is not null || argument.RefKindKeyword != default)
                        return Unsupported(argument, "write the indices in order, as plain ints");
                    var index = Lower(argument.Expression);
                    if (index is null)
                        return null;
                    if (index.Type != ModType.Int)
                        return Unsupported(argument, "table indices are ints");
                    indices.Add(index);
                }
                tableUses.Add(new ModTableUse(slot.Name, indices.Count, LocationInfo.From(element)));
                return new ModTableRead(slot.Kind == ModFieldKind.FloatTable ? ModType.Float : ModType.Int, slot.Slot, slot.Name, new EquatableArray<ModExpr>(indices));
            }

            private ModExpr? Unary(PrefixUnaryExpressionSyntax unary, ITypeSymbol? type)
            {
                var resultType = TypeOf(type);
                if (resultType is null)
                    return UnsupportedType(unary, type);
                var operand = Lower(unary.Operand);
                if (operand is null)
                    return null;
                if (operand.Type != resultType)
                    return UnsupportedType(unary.Operand, model.GetTypeInfo(unary.Operand, cancellationToken).Type);
                if (unary.IsKind(SyntaxKind.UnaryPlusExpression))
                    return operand;
                return new ModUnary(resultType.Value, unary.IsKind(SyntaxKind.LogicalNotExpression) ? ModUnaryOp.Not : ModUnaryOp.Negate, operand);
            }

            private static ModBinaryOp? BinaryOp(SyntaxKind kind) => kind switch
            {
                SyntaxKind.AddExpression => ModBinaryOp.Add,
                SyntaxKind.SubtractExpression => ModBinaryOp.Subtract,
                SyntaxKind.MultiplyExpression => ModBinaryOp.Multiply,
                SyntaxKind.DivideExpression => ModBinaryOp.Divide,
                SyntaxKind.ModuloExpression => ModBinaryOp.Remainder,
                SyntaxKind.LessThanExpression => ModBinaryOp.Less,
                SyntaxKind.LessThanOrEqualExpression => ModBinaryOp.LessOrEqual,
                SyntaxKind.GreaterThanExpression => ModBinaryOp.Greater,
                SyntaxKind.GreaterThanOrEqualExpression => ModBinaryOp.GreaterOrEqual,
                SyntaxKind.EqualsExpression => ModBinaryOp.Equal,
                SyntaxKind.NotEqualsExpression => ModBinaryOp.NotEqual,
                SyntaxKind.LogicalAndExpression => ModBinaryOp.And,
                SyntaxKind.LogicalOrExpression => ModBinaryOp.Or,
                _ => null,
            };

            private ModExpr? Binary(BinaryExpressionSyntax binary, ModBinaryOp op, ITypeSymbol? type)
            {
                var resultType = TypeOf(type);
                if (resultType is null)
                    return UnsupportedType(binary, type);
                // One diagnostic per expression: the right side is read only when the left one is fine.
                var left = Lower(binary.Left);
                var right = left is null ? null : Lower(binary.Right);
                if (left is null || right is null)
                    return null;
                if (left.Type != right.Type)
                    return Unsupported(binary, ExpressionHint);
                bool logical = op is ModBinaryOp.And or ModBinaryOp.Or;
                bool arithmetic = op <= ModBinaryOp.Remainder;
                if ((logical && left.Type != ModType.Bool) || (arithmetic && left.Type == ModType.Bool))
                    return Unsupported(binary, ExpressionHint);
                return new ModBinary(resultType.Value, op, left, right);
            }

            private ModExpr? Conditional(ConditionalExpressionSyntax conditional, ITypeSymbol? type)
            {
                var resultType = TypeOf(type);
                if (resultType is null)
                    return UnsupportedType(conditional, type);
                var condition = Lower(conditional.Condition);
                var whenTrue = condition is null ? null : Lower(conditional.WhenTrue);
                var whenFalse = whenTrue is null ? null : Lower(conditional.WhenFalse);
                if (condition is null || whenTrue is null || whenFalse is null)
                    return null;
                if (whenTrue.Type != resultType || whenFalse.Type != resultType)
                    return Unsupported(conditional, ExpressionHint);
                return new ModConditional(resultType.Value, condition, whenTrue, whenFalse);
            }

            private ModExpr? Cast(CastExpressionSyntax cast, ITypeSymbol? type)
            {
                var resultType = TypeOf(type);
                if (resultType is null)
                    return UnsupportedType(cast, type);
                var operand = Lower(cast.Expression);
                if (operand is null)
                    return null;
                if (operand.Type == resultType)
                    return operand;
                if (operand.Type == ModType.Bool || resultType == ModType.Bool)
                    return Unsupported(cast, "casts go between int and float");
                return new ModCast(resultType.Value, operand);
            }

            private ModExpr? Call(InvocationExpressionSyntax invocation, ITypeSymbol? type)
            {
                if (model.GetSymbolInfo(invocation, cancellationToken).Symbol is not IMethodSymbol method
                    || method.ContainingType?.ContainingNamespace?.ToDisplayString() != "System"
                    || method.ContainingType.Name is not ("MathF" or "Math")
                    || Function(method.Name) is not { } function
                    || TypeOf(method.ReturnType) is not { } resultType
                    || method.Parameters.Any(p => p.Type.SpecialType != method.ReturnType.SpecialType)
                    || (resultType == ModType.Int && function is not (ModFunction.Abs or ModFunction.Min or ModFunction.Max))
                    || resultType == ModType.Bool
                    || invocation.ArgumentList.Arguments.Count != method.Parameters.Length)
                    return Unsupported(invocation, CallHint);

                // Arguments in the parameters' order (a named argument may come first).
                var ordered = new ArgumentSyntax[method.Parameters.Length];
                var positional = 0;
                foreach (var argument in invocation.ArgumentList.Arguments)
                {
                    int index = argument.NameColon is { } nameColon
                        ? method.Parameters.Select(p => p.Name).ToList().IndexOf(nameColon.Name.Identifier.ValueText)
                        : positional++;
                    if (index < 0 || ordered[index] is not null)
                        return Unsupported(invocation, CallHint);
                    ordered[index] = argument;
                }

                if (function == ModFunction.Pow && !model.GetConstantValue(ordered[1].Expression, cancellationToken).HasValue)
                    return Unsupported(ordered[1].Expression, "MathF.Pow takes a constant exponent here; for a run-time one write MathF.Exp(y * MathF.Log(x))");

                var arguments = new List<ModExpr>();
                foreach (var argument in ordered)
                {
                    var value = Lower(argument.Expression);
                    if (value is null)
                        return null;
                    arguments.Add(value);
                }
                return new ModCall(resultType, function, new EquatableArray<ModExpr>(arguments));
            }

            private static ModFunction? Function(string name) => name switch
            {
                "Tanh" => ModFunction.Tanh,
                "Exp" => ModFunction.Exp,
                "Log" => ModFunction.Log,
                "Sqrt" => ModFunction.Sqrt,
                "Abs" => ModFunction.Abs,
                "Min" => ModFunction.Min,
                "Max" => ModFunction.Max,
                "Pow" => ModFunction.Pow,
                "Floor" => ModFunction.Floor,
                "Ceiling" => ModFunction.Ceiling,
                _ => null,
            };

            private ModExpr? UnsupportedType(SyntaxNode node, ITypeSymbol? type)
            {
                if (type is null || type.TypeKind == TypeKind.Error)
                    return null; // the compiler reports it
                string hint = type.SpecialType == SpecialType.System_Double
                    ? "mods compute with float, int and bool; write float literals with an f suffix (0.5f) and call MathF, not Math"
                    : $"mods compute with float, int and bool, not '{type.ToDisplayString()}'";
                return Unsupported(node, hint);
            }

            private ModExpr? Unsupported(SyntaxNode node, string hint)
            {
                Unsupported(node.GetLocation(), node, hint);
                return null;
            }

            private void Unsupported(Location? location, object what, string hint)
            {
                string text = what.ToString() ?? "";
                int newline = text.IndexOfAny(new[] { '\r', '\n' });
                if (newline >= 0)
                    text = text.Substring(0, newline).TrimEnd() + " …";
                if (text.Length > 60)
                    text = text.Substring(0, 57) + "…";
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModUnsupported, LocationInfo.From(location), text, mod.Name, hint));
            }
        }

        /// <summary>float, int, bool → their <see cref="ModType"/>; anything else null.</summary>
        public static ModType? TypeOf(ITypeSymbol? type) => type?.SpecialType switch
        {
            SpecialType.System_Single => ModType.Float,
            SpecialType.System_Int32 => ModType.Int,
            SpecialType.System_Boolean => ModType.Bool,
            _ => null,
        };
    }
}
