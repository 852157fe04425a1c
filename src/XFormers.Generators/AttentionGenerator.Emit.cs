using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using Fluid;
using XFormers.Generators.Models;

namespace XFormers.Generators
{
    public sealed partial class AttentionGenerator
    {
        /// <summary>Model → source. Formatting only: the templates read like the kernels they make.</summary>
        internal static class Emitter
        {
            private static readonly TemplateOptions Options = CreateOptions();
            private static readonly IFluidTemplate VariantTemplate = Load("Variant.liquid");
            private static readonly IFluidTemplate RegistryTemplate = Load("Registry.liquid");
            private static readonly IFluidTemplate TensorCoreTemplate = Load("TensorCore.liquid");

            public static string EmitVariant(VariantModel model) => Render(VariantTemplate, model);

            public static string EmitTensorCore(VariantModel model) => Render(TensorCoreTemplate, model);

            public static string EmitRegistry(RegistryModel model) => Render(RegistryTemplate, model);

            /// <summary>One dispatch table per declaring type, its variants in declaration-name order.</summary>
            public static ImmutableArray<RegistryModel> GroupByDeclaringType(ImmutableArray<VariantModel> variants) =>
                variants
                    .GroupBy(v => v.DeclaringTypeName)
                    .OrderBy(g => g.Key, System.StringComparer.Ordinal)
                    .Select(g =>
                    {
                        var first = g.First();
                        var names = g.Select(v => v.MethodName).Distinct().OrderBy(n => n, System.StringComparer.Ordinal);
                        return new RegistryModel(
                            first.Namespace,
                            first.ContainingTypes,
                            first.DeclaringTypeName,
                            first.DeclaringTypeName.Replace('+', '.') + ".XFormersRegistry.g.cs",
                            new EquatableArray<string>(names));
                    })
                    .ToImmutableArray();

            private static string Render(IFluidTemplate template, object model)
            {
                var context = new TemplateContext(model, Options);
                return template.Render(context).Replace("\r\n", "\n");
            }

            private static TemplateOptions CreateOptions()
            {
                var options = new TemplateOptions();
                options.MemberAccessStrategy.MemberNameStrategy = MemberNameStrategies.SnakeCase;
                options.MemberAccessStrategy.Register<VariantModel>();
                options.MemberAccessStrategy.Register<RegistryModel>();
                options.MemberAccessStrategy.Register<ContainingTypeInfo>();
                return options;
            }

            private static IFluidTemplate Load(string name)
            {
                var assembly = typeof(Emitter).Assembly;
                using var stream = assembly.GetManifestResourceStream("XFormers.Generators.Templates." + name)
                    ?? throw new FileNotFoundException("Embedded template not found", name);
                using var reader = new StreamReader(stream);
                var parser = new FluidParser();
                if (!parser.TryParse(reader.ReadToEnd(), out var template, out var error))
                    throw new InvalidDataException($"Template {name}: {error}");
                return template;
            }
        }
    }
}
