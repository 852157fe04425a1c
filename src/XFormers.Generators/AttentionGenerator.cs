using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace XFormers.Generators
{
    /// <summary>
    /// [Attention] on a static partial method → a model per variant (Parse) → specialized ILGPU forward and
    /// backward kernels, the method's body, and one dispatch table per declaring type (Emit).
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed partial class AttentionGenerator : IIncrementalGenerator
    {
        internal const string AttributeName = "XFormers.Dsl.AttentionAttribute";
        internal const string KernelTypeName = "XFormers.AttentionKernel";

        /// <summary>The prefix of the members the generator adds to a declaring type.</summary>
        internal const string ReservedPrefix = "__XFormers_";

        /// <summary>Names of the pipeline's steps, for tests that check what re-ran.</summary>
        public static class TrackingNames
        {
            public const string Variants = nameof(Variants);
            public const string Models = nameof(Models);
            public const string VariantFiles = nameof(VariantFiles);
            public const string Registries = nameof(Registries);
        }

        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var results = context.SyntaxProvider
                .ForAttributeWithMetadataName(
                    AttributeName,
                    predicate: static (node, _) => node is MethodDeclarationSyntax,
                    transform: static (ctx, ct) => Parser.Parse(ctx, ct))
                .WithTrackingName(TrackingNames.Variants);

            context.RegisterSourceOutput(results, static (spc, result) =>
            {
                foreach (var diagnostic in result.Diagnostics)
                    spc.ReportDiagnostic(diagnostic.ToDiagnostic());
            });

            var models = results
                .Where(static r => r.Value is not null)
                .Select(static (r, _) => r.Value!)
                .WithTrackingName(TrackingNames.Models);

            // A rejected declaration's stand-in body, so the build shows its XFA errors and not also CS8795.
            var stubs = results
                .Where(static r => r.Stub is not null)
                .Select(static (r, _) => r.Stub!);

            // Hint names are decided over all files at once: the compiler compares them ignoring case.
            var plan = models
                .Collect()
                .Combine(stubs.Collect())
                .Select(static (all, _) => Emitter.Plan(all.Left, all.Right));

            var variantFiles = plan
                .SelectMany(static (p, _) => p.Variants.AsImmutableArray())
                .WithTrackingName(TrackingNames.VariantFiles);

            var registries = plan
                .SelectMany(static (p, _) => p.Registries.AsImmutableArray())
                .WithTrackingName(TrackingNames.Registries);

            context.RegisterSourceOutput(variantFiles, static (spc, file) =>
            {
                string name = file.Model.Declaration.DeclaringTypeName + "." + file.Model.Declaration.MethodName;
                Emitter.AddSource(spc, file.HintName, name, () => Emitter.EmitVariant(file.Model));
                if (file.Model.Tc is not null)
                    Emitter.AddSource(spc, file.HintName.Replace(".g.cs", ".TensorCore.g.cs"), name, () => Emitter.EmitTensorCore(file.Model));
                if (file.Model.Hopper is not null)
                    Emitter.AddSource(spc, file.HintName.Replace(".g.cs", ".Hopper.g.cs"), name, () => Emitter.EmitHopper(file.Model));
            });

            context.RegisterSourceOutput(registries, static (spc, registry) =>
                Emitter.AddSource(spc, registry.HintName, registry.DeclaringTypeName, () => Emitter.EmitRegistry(registry)));

            context.RegisterSourceOutput(plan.SelectMany(static (p, _) => p.Stubs.AsImmutableArray()), static (spc, file) =>
                Emitter.AddSource(spc, file.HintName, file.Model.DeclaringTypeName + "." + file.Model.MethodName, () => Emitter.EmitStub(file.Model)));
        }
    }
}
