using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Scriban;
using Scriban.Parsing;
using Scriban.Runtime;
using XFormers.Generators.Diagnostics;
using XFormers.Generators.Models;

namespace XFormers.Generators
{
    public sealed partial class AttentionGenerator
    {
        /// <summary>Model → source. Formatting only: the templates read like the kernels they make.</summary>
        internal static class Emitter
        {
            private static readonly Template VariantTemplate = Load("Variant.liquid");
            private static readonly Template RegistryTemplate = Load("Registry.liquid");
            private static readonly Template TensorCoreTemplate = Load("TensorCore.liquid");
            private static readonly Template HopperTemplate = Load("Hopper.liquid");
            private static readonly Template StubTemplate = Load("Stub.liquid");
            private static readonly Includes Included = new(
                "TensorCore.Forward.liquid", "TensorCore.BackwardKv.liquid", "TensorCore.BackwardQ.liquid");

            public static string EmitVariant(VariantModel model) => Render(VariantTemplate, model, model.Declaration);

            public static string EmitTensorCore(VariantModel model) =>
                Render(TensorCoreTemplate, model, model.Declaration, Templates.TensorCoreFragments.Functions(model.Tc!));

            public static string EmitRegistry(RegistryModel model) => Render(RegistryTemplate, model);

            /// <summary>
            /// The variant's sm_90a modules and launch records: the forward (written by <see cref="Hopper.HopperForwardEmitter"/>)
            /// and, with a backward, its dK/dV and dQ passes (<see cref="Hopper.HopperBackwardEmitter"/>).
            /// </summary>
            public static string EmitHopper(VariantModel model)
            {
                string subject = model.Declaration.DeclaringTypeName + "." + model.Declaration.MethodName + " (" + model.Summary + ")";
                string Ptx(HopperPlan? plan) => plan is null ? "" : Hopper.HopperForwardEmitter.Emit(plan, subject, model.Mods).Replace("\"", "\"\"");
                string backward = model.HopperBackwardKv is { } kv && model.HopperBackwardQ is { } q
                    ? Hopper.HopperBackwardEmitter.Emit(kv, model.HopperBackwardV, q, subject, model.Mods).Replace("\"", "\"\"")
                    : "";
                return Render(HopperTemplate, new HopperSource(
                    model, model.Hopper!, Hopper.HopperForwardEmitter.EntryPoint, Ptx(model.Hopper), model.HopperSmallGrid, Ptx(model.HopperSmallGrid),
                    model.HopperBackwardKv, model.HopperBackwardV, model.HopperBackwardQ, backward));
            }
            public static string EmitStub(StubModel model) => Render(StubTemplate, model);

            /// <summary>
            /// Renders and adds one file; a failure (a template that does not load or render, a hint name the compiler
            /// refuses) becomes XFA0099 for <paramref name="subject"/> instead of an exception that would drop every
            /// file of the generator (CS8785).
            /// </summary>
            public static void AddSource(SourceProductionContext context, string hintName, string subject, Func<string> render)
            {
                try
                {
                    context.AddSource(hintName, render());
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    var cause = ex is TypeInitializationException { InnerException: { } inner } ? inner : ex;
                    context.ReportDiagnostic(Diagnostic.Create(
                        DiagnosticDescriptors.InternalError, Location.None, subject, cause.GetType().Name + ": " + cause.Message));
                }
            }

            /// <summary>
            /// Every generated file and its hint name: one per variant, one dispatch table per declaring type (its
            /// variants in name order). The compiler rejects two hint names that differ only in case, so names are
            /// handed out over the whole set: a clash (methods <c>A</c> and <c>a</c>, a method named
            /// <c>XFormersRegistry</c>) gets a numbered suffix, and a method declared twice (CS0111) is emitted once. A rejected
            /// declaration's stand-in body is emitted once too, and not at all beside a valid declaration of the same name.
            /// </summary>
            public static FilePlan Plan(ImmutableArray<VariantModel> variants, ImmutableArray<StubModel> stubs)
            {
                var taken = new HashSet<string>(System.StringComparer.OrdinalIgnoreCase);
                string Claim(string stem)
                {
                    var hint = stem + ".g.cs";
                    for (int n = 2; !taken.Add(hint); n++)
                        hint = stem + "." + n + ".g.cs";
                    return hint;
                }

                var declarations = variants.Select(v => v.Declaration).ToList();
                var registries = declarations
                    .GroupBy(v => v.DeclaringTypeName)
                    .OrderBy(g => g.Key, System.StringComparer.Ordinal)
                    .Select(g =>
                    {
                        var first = g.First();
                        var identifiers = g.Select(v => v.MethodIdentifier).Distinct().OrderBy(n => n, System.StringComparer.Ordinal);
                        return new RegistryModel(
                            first.Namespace,
                            first.ContainingTypes,
                            first.DeclaringTypeName,
                            Claim(first.DeclaringTypeName + ".XFormersRegistry"),
                            new EquatableArray<string>(identifiers));
                    })
                    .ToList();

                var files = variants
                    .GroupBy(v => (v.Declaration.DeclaringTypeName, v.Declaration.MethodName))
                    .Select(g => g.First())
                    .OrderBy(v => v.Declaration.DeclaringTypeName, System.StringComparer.Ordinal)
                    .ThenBy(v => v.Declaration.MethodName, System.StringComparer.Ordinal)
                    .Select(v => new VariantFile(Claim(v.Declaration.DeclaringTypeName + "." + v.Declaration.MethodName), v))
                    .ToList();

                var emitted = new HashSet<(string, string)>(declarations.Select(v => (v.DeclaringTypeName, v.MethodName)));
                var stubFiles = stubs
                    .OrderBy(s => s.DeclaringTypeName, System.StringComparer.Ordinal)
                    .ThenBy(s => s.MethodName, System.StringComparer.Ordinal)
                    .Where(s => emitted.Add((s.DeclaringTypeName, s.MethodName)))
                    .Select(s => new StubFile(Claim(s.DeclaringTypeName + "." + s.MethodName), s))
                    .ToList();

                return new FilePlan(new EquatableArray<VariantFile>(files), new EquatableArray<RegistryModel>(registries), new EquatableArray<StubFile>(stubFiles));
            }

            /// <summary>
            /// Renders <paramref name="template"/> with <paramref name="model"/>'s properties as its globals, named by
            /// <see cref="SnakeCase"/>, as are the members of the objects they hold; <paramref name="more"/> adds globals: the
            /// members of a variant's declaration, the functions a template calls.
            /// </summary>
            private static string Render(Template template, object model, params object[] more)
            {
                var globals = new ScriptObject();
                globals.Import(model, renamer: SnakeCase);
                foreach (var scope in more)
                {
                    if (scope is ScriptObject functions)
                        globals.Import(functions);
                    else
                        globals.Import(scope, renamer: SnakeCase);
                }
                // No limit on a value's text (Scriban's default cuts it at 1 MB with "...": a backward module with mods passes it).
                var context = new LiquidTemplateContext { MemberRenamer = SnakeCase, StrictVariables = true, LimitToString = 0 };
                Included.Lend(context);
                context.PushGlobal(globals);
                return template.Render(context).Replace("\r\n", "\n");
            }

            /// <summary>
            /// A member's name in snake case with a break before every capital: <c>HeadDim</c> is <c>head_dim</c>,
            /// <c>DType</c> is <c>d_type</c>, <c>ForwardMTiles</c> is <c>forward_m_tiles</c>. (Scriban's own renamer
            /// joins runs of capitals: <c>dtype</c>.)
            /// </summary>
            private static string SnakeCase(System.Reflection.MemberInfo member)
            {
                var name = new System.Text.StringBuilder(member.Name.Length + 8);
                foreach (char c in member.Name)
                {
                    if (char.IsUpper(c) && name.Length > 0)
                        name.Append('_');
                    name.Append(char.ToLowerInvariant(c));
                }
                return name.ToString();
            }

            /// <summary>
            /// An embedded template in Liquid syntax, parsed by Scriban. One that others include loses its file's last
            /// line break (as Jinja drops a template's final newline): the includer's text goes on from its last line.
            /// </summary>
            private static Template Load(string name, bool included = false)
            {
                var assembly = typeof(Emitter).Assembly;
                using var stream = assembly.GetManifestResourceStream("XFormers.Generators.Templates." + name)
                    ?? throw new FileNotFoundException("Embedded template not found", name);
                using var reader = new StreamReader(stream);
                var text = reader.ReadToEnd();
                if (included && text.EndsWith("\n", StringComparison.Ordinal))
                    text = text.Substring(0, text.Length - (text.EndsWith("\r\n", StringComparison.Ordinal) ? 2 : 1));
                var template = Template.ParseLiquid(text, name);
                if (template.HasErrors)
                    throw new InvalidDataException($"Template {name}: {string.Join("; ", template.Messages)}");
                return template;
            }

            /// <summary>
            /// The templates the others include by name (<c>{% include "TensorCore.Forward.liquid" %}</c>), each parsed
            /// once, as the others are. A render finds them in its context's cache, so the loader only answers names: its
            /// <c>Load</c> is never reached, and a name not among them fails the render (XFA0099).
            /// </summary>
            private sealed class Includes : ITemplateLoader
            {
                private readonly Dictionary<string, Template> templates;

                public Includes(params string[] names) =>
                    templates = names.ToDictionary(name => name, name => Emitter.Load(name, included: true));

                /// <summary>Hands <paramref name="context"/> the templates, parsed, for its <c>include</c> tags.</summary>
                public void Lend(TemplateContext context)
                {
                    context.TemplateLoader = this;
                    foreach (var template in templates)
                        context.CachedTemplates[template.Key] = template.Value;
                }

                public string? GetPath(TemplateContext context, SourceSpan callerSpan, string templateName) =>
                    templates.ContainsKey(templateName) ? templateName : null;

                public string? Load(TemplateContext context, SourceSpan callerSpan, string templatePath) => null;

                public ValueTask<string?> LoadAsync(TemplateContext context, SourceSpan callerSpan, string templatePath) =>
                    new((string?)null);
            }
        }
    }
}
