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

        /// <summary>Names of the pipeline's steps, for tests that check what re-ran.</summary>
        public static class TrackingNames
        {
            public const string Variants = nameof(Variants);
            public const string Models = nameof(Models);
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
                if (result.Value is { } model)
                {
                    spc.AddSource(model.HintName, Emitter.EmitVariant(model));
                    if (model.TensorCore)
                        spc.AddSource(model.TensorCoreHintName, Emitter.EmitTensorCore(model));
                }
            });

            var models = results
                .Where(static r => r.Value is not null)
                .Select(static (r, _) => r.Value!)
                .WithTrackingName(TrackingNames.Models);

            var registries = models
                .Collect()
                .SelectMany(static (all, _) => Emitter.GroupByDeclaringType(all))
                .WithTrackingName(TrackingNames.Registries);

            context.RegisterSourceOutput(registries, static (spc, registry) =>
                spc.AddSource(registry.HintName, Emitter.EmitRegistry(registry)));
        }
    }
}
