using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using XFormers.Generators.Diagnostics;
using XFormers.Generators.Models;

namespace XFormers.Generators.Mods
{
    /// <summary>A mod named by the attribute: the name and the argument's expression (where XFA0015 … XFA0018 point).</summary>
    internal sealed record ModReference(string? Name, ExpressionSyntax? Expression);

    /// <summary>
    /// A variant's mods, from the attribute's names to a <see cref="ModsModel"/>: resolve each method (<see cref="ModParser"/>),
    /// lay out the argument struct's slots, lower the bodies, check the tables' ranks, derive the score mod, write the C#.
    /// </summary>
    internal static class ModCompiler
    {
        /// <summary>The model, or null when the variant names no mod or any mod has an error (reported in <paramref name="diagnostics"/>).</summary>
        public static ModsModel? Compile(
            SemanticModel model, INamedTypeSymbol declaringType, ModReference? score, ModReference? mask,
            List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
        {
            if (score is null && mask is null)
                return null;
            int before = diagnostics.Count;
            var tree = model.SyntaxTree;
            var scoreMod = score is null ? null : ModParser.Resolve(ModKind.Score, score.Name, score.Expression, declaringType, tree, diagnostics, cancellationToken);
            var maskMod = mask is null ? null : ModParser.Resolve(ModKind.Mask, mask.Name, mask.Expression, declaringType, tree, diagnostics, cancellationToken);

            // One argument struct for both mods.
            var withArgs = new[] { scoreMod, maskMod }.Where(m => m?.Args is not null).Select(m => m!).ToList();
            if (withArgs.Count == 2 && !SymbolEqualityComparer.Default.Equals(withArgs[0].Args!.Type, withArgs[1].Args!.Type))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModArgsMismatch, LocationInfo.From(withArgs[1].ArgsSyntax?.Type),
                    withArgs[1].Name, withArgs[1].Args!.Type.ToDisplayString(), withArgs[0].Name, withArgs[0].Args!.Type.ToDisplayString()));
                return null;
            }
            var argsType = withArgs.FirstOrDefault()?.Args?.Type;
            var fields = argsType is null
                ? new Dictionary<string, ModField>()
                : Layout(argsType, withArgs[0].ArgsSyntax, tree, diagnostics);

            var tableUses = new List<ModTableUse>();
            var scoreBody = scoreMod is null ? null : ModParser.Lower(scoreMod, model, fields, tableUses, diagnostics, cancellationToken);
            var maskBody = maskMod is null ? null : ModParser.Lower(maskMod, model, fields, tableUses, diagnostics, cancellationToken);

            var ranks = new Dictionary<string, int>();
            foreach (var use in tableUses)
            {
                if (!ranks.TryGetValue(use.Field, out int rank))
                    ranks[use.Field] = use.Rank;
                else if (rank != use.Rank)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModTableRank, use.Location, use.Field, use.Rank.ToString(), rank.ToString()));
            }
            if (diagnostics.Count > before)
                return null;

            var read = new HashSet<string>(
                new[] { scoreBody, maskBody }.Where(b => b is not null).SelectMany(b => ModWalk.Descendants(b!))
                    .Select(e => e switch { ModScalarRead s => s.Field, ModTableRead t => t.Field, _ => null })
                    .Where(name => name is not null)!);
            var slots = fields.Values
                .Select(f => f with { Read = read.Contains(f.Name), Rank = ranks.TryGetValue(f.Name, out int r) ? r : 0 })
                .ToList();

            var scoreGrad = scoreBody is null ? null : ModDerivative.Derive(scoreBody);
            var maskParameters = maskBody is null
                ? new HashSet<ModParameter>()
                : new HashSet<ModParameter>(ModWalk.Descendants(maskBody).OfType<ModParameterRead>().Select(p => p.Parameter));
            return new ModsModel
            {
                HasScore = scoreBody is not null,
                HasMask = maskBody is not null,
                ScoreBody = Lines(scoreBody),
                ScoreGradBody = Lines(scoreGrad),
                MaskBody = Lines(maskBody),
                ArgsType = argsType?.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) ?? "",
                BindBody = new EquatableArray<string>(ModCSharpWriter.Bind(slots)),
                MaskReadsBatch = maskParameters.Contains(ModParameter.Batch),
                MaskReadsHead = maskParameters.Contains(ModParameter.Head),
                ScoreMethod = scoreMod?.Name ?? "",
                MaskMethod = maskMod?.Name ?? "",
                Score = scoreBody,
                ScoreGrad = scoreGrad,
                Mask = maskBody,
                Fields = new EquatableArray<ModField>(slots),
            };
        }

        private static EquatableArray<string> Lines(ModBody? body) =>
            body is null ? EquatableArray<string>.Empty : new EquatableArray<string>(ModCSharpWriter.Statements(body));

        /// <summary>
        /// Every instance field of the argument struct, in declaration order, with a slot of its kind: XFA0020 for a type
        /// with no slot, XFA0021 for the first field past a kind's slots, XFA0018 when the struct lives in another file.
        /// </summary>
        private static Dictionary<string, ModField> Layout(ITypeSymbol argsType, ParameterSyntax? argsSyntax, SyntaxTree tree, List<DiagnosticInfo> diagnostics)
        {
            var fields = new Dictionary<string, ModField>();
            var parameterLocation = LocationInfo.From(argsSyntax?.Type);
            if (argsType.DeclaringSyntaxReferences.Any(r => r.SyntaxTree != tree))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModInOtherFile, parameterLocation, "Argument struct", argsType.Name, argsType.Name + "'s mods"));
                return fields;
            }

            var counts = new Dictionary<ModFieldKind, int>();
            foreach (var field in argsType.GetMembers().OfType<IFieldSymbol>().Where(f => !f.IsStatic && !f.IsConst && !f.IsImplicitlyDeclared))
            {
                var location = field.Locations.FirstOrDefault(l => l.IsInSource) is { } inSource ? LocationInfo.From(inSource) : parameterLocation;
                var kind = KindOf(field.Type);
                if (kind is null)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModArgsFieldType, location, field.Name, argsType.Name, field.Type.ToDisplayString()));
                    continue;
                }
                // int and bool share the int slots.
                var counter = kind == ModFieldKind.Bool ? ModFieldKind.Int : kind.Value;
                counts.TryGetValue(counter, out int slot);
                counts[counter] = slot + 1;
                bool table = counter is ModFieldKind.IntTable or ModFieldKind.FloatTable;
                int limit = table ? ModLimits.Tables : ModLimits.Scalars;
                if (slot == limit)
                {
                    string what = counter switch
                    {
                        ModFieldKind.Int => "int or bool field",
                        ModFieldKind.Float => "float field",
                        ModFieldKind.IntTable => "Tensor<int> table",
                        _ => "Tensor<float> table",
                    };
                    string has = counter switch
                    {
                        ModFieldKind.Int => $"{limit} int slots, shared by int and bool fields",
                        ModFieldKind.Float => $"{limit} float slots",
                        ModFieldKind.IntTable => $"{limit} int tables",
                        _ => $"{limit} float tables",
                    };
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModArgsTooMany, location, field.Name, argsType.Name, what, has));
                }
                if (slot < limit)
                    fields[field.Name] = new ModField(field.Name, kind.Value, slot, 0, false);
            }
            return fields;
        }

        private static ModFieldKind? KindOf(ITypeSymbol type)
        {
            switch (type.SpecialType)
            {
                case SpecialType.System_Int32: return ModFieldKind.Int;
                case SpecialType.System_Boolean: return ModFieldKind.Bool;
                case SpecialType.System_Single: return ModFieldKind.Float;
            }
            if (type is INamedTypeSymbol { IsGenericType: true } named
                && named.OriginalDefinition.ToDisplayString() == "XFormers.Tensor<T>")
            {
                return named.TypeArguments[0].SpecialType switch
                {
                    SpecialType.System_Int32 => ModFieldKind.IntTable,
                    SpecialType.System_Single => ModFieldKind.FloatTable,
                    _ => null,
                };
            }
            return null;
        }
    }
}
