using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using XFormers.Dsl;
using XFormers.Generators.Diagnostics;
using XFormers.Generators.Models;
using XFormers.Generators.Mods;

namespace XFormers.Generators
{
    public sealed partial class AttentionGenerator
    {
        /// <summary>Symbols and syntax → <see cref="VariantModel"/>: every check and every decision lives here.</summary>
        internal static class Parser
        {
            /// <summary>The largest head dim with tensor-core kernels (the largest the DSL takes).</summary>
            public const int TensorCoreMaxHeadDim = 256;

            public static Result<VariantModel> Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
            {
                var method = (MethodDeclarationSyntax)context.TargetNode;
                try
                {
                    return ParseCore(context, method, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    throw;
                }
                catch (Exception ex)
                {
                    var diagnostic = DiagnosticInfo.Create(
                        DiagnosticDescriptors.InternalError,
                        LocationInfo.From(method.Identifier.GetLocation()),
                        method.Identifier.Text,
                        ex.GetType().Name + ": " + ex.Message);
                    return new Result<VariantModel>(null, new EquatableArray<DiagnosticInfo>(new[] { diagnostic }));
                }
            }

            /// <summary>
            /// The steps, in order: read the declaration (the method and the types around it), read the options, choose the
            /// SIMT tiles, read the grouping, check conflicts, compile the mods; then, without a diagnostic, plan the
            /// tensor-core and sm_90a kernels. Every step adds its diagnostics; a declaration with any gets a stand-in body.
            /// </summary>
            private static Result<VariantModel> ParseCore(GeneratorAttributeSyntaxContext context, MethodDeclarationSyntax syntax, CancellationToken cancellationToken)
            {
                var diagnostics = new List<DiagnosticInfo>();
                var site = ReadDeclaration(context, syntax, diagnostics, cancellationToken);
                if (site is null)
                    return new Result<VariantModel>(null, EquatableArray<DiagnosticInfo>.Empty);
                if (site.ReservedByAnotherVariant && diagnostics.Count == 0)
                    return new Result<VariantModel>(null, EquatableArray<DiagnosticInfo>.Empty, Stub(site, "XFA0014"));

                var declared = ReadOptions(context, diagnostics, cancellationToken);
                var simt = ChooseTiles(declared, diagnostics);
                int groupSize = ReadGrouping(declared, diagnostics);
                CheckConflicts(declared, diagnostics);
                var mods = ModCompiler.Compile(
                    context.SemanticModel, site.Symbol.ContainingType, declared.Options.Mod("ScoreMod"), declared.Options.Mod("MaskMod"), diagnostics, cancellationToken);

                if (diagnostics.Count > 0)
                {
                    var ids = string.Join(", ", diagnostics.Select(d => d.Descriptor.Id).Distinct().OrderBy(id => id, StringComparer.Ordinal));
                    return new Result<VariantModel>(null, new EquatableArray<DiagnosticInfo>(diagnostics), site.Implementable ? Stub(site, ids) : null);
                }

                return new Result<VariantModel>(PlanKernels(site, declared, simt, groupSize, mods), EquatableArray<DiagnosticInfo>.Empty);
            }

            /// <summary>The declaration's method and types, read from the symbols; kept only while parsing.</summary>
            /// <param name="Implementable">Whether a stand-in body could implement the method as declared.</param>
            /// <param name="ReservedByAnotherVariant">
            /// Whether the declaring type has members of the reserved names that another variant of the type reports.
            /// </param>
            private sealed record DeclarationSite(
                IMethodSymbol Symbol, MethodDeclarationSyntax Syntax, List<ContainingTypeInfo> ContainingTypes, bool Implementable, bool ReservedByAnotherVariant);

            /// <summary>
            /// The method's shape and the types around it, each a diagnostic when it cannot be extended; null for a declaration
            /// only the compiler can report on (a method outside any type, a partial method without accessibility whose
            /// signature needs it).
            /// </summary>
            private static DeclarationSite? ReadDeclaration(
                GeneratorAttributeSyntaxContext context, MethodDeclarationSyntax syntax, List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
            {
                // A method outside any type (CS0116) belongs to no type the generator could extend: the compiler's error says it all.
                if (syntax.Parent is not TypeDeclarationSyntax)
                    return null;

                var symbol = (IMethodSymbol)context.TargetSymbol;
                var name = symbol.Name;
                var identifier = LocationInfo.From(syntax.Identifier.GetLocation());

                // A partial method with a return value or an out parameter and no accessibility is the compiler's error
                // (CS8796, CS8797); anything generated for it would repeat the error.
                bool hasAccessibility = syntax.Modifiers.Any(m => IsAccessibility(m.Kind()));
                bool isPartial = syntax.Modifiers.Any(SyntaxKind.PartialKeyword);
                if (isPartial && !hasAccessibility && (!symbol.ReturnsVoid || symbol.Parameters.Any(p => p.RefKind == RefKind.Out)))
                    return null;

                // The method's shape: static partial, no body (here or in an implementing part the user wrote), not extern,
                // no parameters, non-generic, returning AttentionKernel by value.
                bool isStatic = syntax.Modifiers.Any(SyntaxKind.StaticKeyword);
                bool isExtern = syntax.Modifiers.Any(SyntaxKind.ExternKeyword);
                bool hasBody = syntax.Body is not null || syntax.ExpressionBody is not null || symbol.PartialImplementationPart is not null;
                if (!isStatic || !isPartial || hasBody || isExtern)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MethodNotStaticPartial, identifier, name));
                if (symbol.IsGenericMethod)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GenericNotSupported, identifier, name));
                if (symbol.Parameters.Length > 0)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MethodHasParameters, LocationInfo.From(syntax.ParameterList), name));
                var returnType = symbol.ReturnType.ToDisplayString();
                if (returnType != KernelTypeName)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.WrongReturnType, LocationInfo.From(syntax.ReturnType), name, returnType));
                if (symbol.RefKind != RefKind.None)
                {
                    string refWord = symbol.RefKind == RefKind.RefReadOnly ? "ref readonly" : "ref";
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ReturnsByReference, LocationInfo.From(syntax.ReturnType), name, returnType, refWord));
                }

                var (containingTypes, typesExtendable) = ReadContainingTypes(context, syntax, diagnostics, cancellationToken);

                // Names the generated half uses (__XFormers_<method>, __XFormers_RegisterVariants) are reserved in the declaring type.
                // Every variant of the type is rejected; the first one in source order reports each offending member once.
                var reserved = symbol.ContainingType.GetMembers()
                    .Where(m => m.Name.StartsWith(ReservedPrefix, StringComparison.Ordinal) && !m.IsImplicitlyDeclared && m.Locations.Any(l => l.IsInSource))
                    .ToList();
                bool reportsReserved = reserved.Count > 0 && IsFirstVariantOfType(symbol);
                if (reportsReserved)
                {
                    foreach (var member in reserved.OrderBy(m => m.Locations[0].SourceSpan.Start))
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ReservedName, LocationInfo.From(member.Locations[0]), member.Name, symbol.ContainingType.Name));
                }

                bool implementable = isPartial && !hasBody && !isExtern && typesExtendable && !symbol.IsGenericMethod
                    && (isStatic || !symbol.ContainingType.IsStatic)
                    && symbol.ReturnType.TypeKind != TypeKind.Error && symbol.Parameters.All(p => p.Type.TypeKind != TypeKind.Error);
                return new DeclarationSite(symbol, syntax, containingTypes, implementable, ReservedByAnotherVariant: reserved.Count > 0 && !reportsReserved);
            }

            /// <summary>
            /// The types around the method, each one checked on its own: partial, non-generic, reachable from a module
            /// initializer. A stand-in body (for a declaration with errors) can extend them only when every one is partial, not
            /// file-local and not generic.
            /// </summary>
            private static (List<ContainingTypeInfo> Types, bool Extendable) ReadContainingTypes(
                GeneratorAttributeSyntaxContext context, MethodDeclarationSyntax syntax, List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
            {
                var containingTypes = new List<ContainingTypeInfo>();
                bool typesExtendable = true;
                foreach (var typeSyntax in syntax.Ancestors().OfType<TypeDeclarationSyntax>().Reverse())
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var typeSymbol = context.SemanticModel.GetDeclaredSymbol(typeSyntax, cancellationToken);
                    var typeLocation = LocationInfo.From(typeSyntax.Identifier.GetLocation());
                    if (!typeSyntax.Modifiers.Any(SyntaxKind.PartialKeyword))
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TypeNotPartial, typeLocation, typeSyntax.Identifier.Text, "add 'partial'"));
                    else if (typeSymbol is { IsFileLocal: true })
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TypeNotPartial, typeLocation, typeSyntax.Identifier.Text, "remove 'file': the generated half lives in another file"));
                    else if (typeSymbol is { DeclaredAccessibility: Accessibility.Private or Accessibility.Protected or Accessibility.ProtectedAndInternal })
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TypeNotPartial, typeLocation, typeSyntax.Identifier.Text, "make it internal or public"));
                    if (typeSyntax.TypeParameterList is not null)
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GenericNotSupported, typeLocation, typeSyntax.Identifier.Text));
                    typesExtendable &= typeSyntax.Modifiers.Any(SyntaxKind.PartialKeyword) && typeSymbol is { IsFileLocal: false } && typeSyntax.TypeParameterList is null;
                    containingTypes.Add(new ContainingTypeInfo(Keyword(typeSyntax), typeSyntax.Identifier.Text));
                }
                return (containingTypes, typesExtendable);
            }

            /// <summary>The attribute's named arguments, with the DSL's defaults; an unknown enum value is XFA0009 and reads as the default.</summary>
            private sealed record Declared(
                MaskKind Mask, BiasKind Bias, DType DType, bool BiasGradient, bool Backward,
                int HeadDim, int Heads, int KvHeads, int BlockM, int BlockN, bool Dropout, Options Options);

            private static Declared ReadOptions(GeneratorAttributeSyntaxContext context, List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
            {
                var attribute = context.Attributes[0];
                var attributeSyntax = attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken) as AttributeSyntax;
                var options = new Options(attribute, attributeSyntax);
                return new Declared(
                    options.Enum("Mask", MaskKind.None, diagnostics),
                    options.Enum("Bias", BiasKind.None, diagnostics),
                    options.Enum("DType", DType.Float16, diagnostics),
                    options.Bool("BiasGradient", false),
                    options.Bool("Backward", true),
                    options.Int("HeadDim", 64),
                    options.Int("Heads", 0),
                    options.Int("KvHeads", 0),
                    options.Int("BlockM", 0),
                    options.Int("BlockN", 0),
                    options.Bool("Dropout", false),
                    options);
            }

            /// <summary>
            /// The SIMT kernels' tiles: the declared ones when valid, else the defaults for the head dim (64 where the head dim
            /// is invalid, so the other checks still run); the dK/dV pass's query tile is BlockM, halved until its tiles fit.
            /// </summary>
            private static SimtPlan ChooseTiles(Declared declared, List<DiagnosticInfo> diagnostics)
            {
                var options = declared.Options;
                int headDim = declared.HeadDim, blockM = declared.BlockM, blockN = declared.BlockN;
                bool headDimValid = headDim >= 8 && headDim <= 256 && headDim % 8 == 0;
                if (!headDimValid)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedHeadDim, options.LocationOf("HeadDim"), headDim.ToString()));

                bool blockMValid = blockM == 0 || (blockM >= 16 && blockM <= 128 && IsPowerOfTwo(blockM));
                // BlockM is the threads of a group (a power of two); BlockN only needs whole tensor-core fragments.
                bool blockNValid = blockN == 0 || (blockN >= 16 && blockN <= 128 && blockN % 16 == 0);
                if (!blockMValid)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidTileSize, options.LocationOf("BlockM"), "BlockM", blockM.ToString(), "a power of two from 16 to 128"));
                if (!blockNValid)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidTileSize, options.LocationOf("BlockN"), "BlockN", blockN.ToString(), "a multiple of 16 from 16 to 128"));

                int effectiveHeadDim = headDimValid ? headDim : 64;
                if (blockM == 0 || !blockMValid)
                    blockM = effectiveHeadDim <= 128 ? 64 : 32;
                if (blockN == 0 || !blockNValid)
                    blockN = effectiveHeadDim <= 64 ? 64 : effectiveHeadDim <= 128 ? 32 : 16;

                // The larger tile must be a multiple of the smaller, so tile boundaries (and a causal diagonal) line up.
                if (Math.Max(blockM, blockN) % Math.Min(blockM, blockN) != 0)
                {
                    var where = options.Has("BlockN") ? options.LocationOf("BlockN") : options.LocationOf("BlockM");
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TilesDoNotDivide, where, blockM.ToString(), blockN.ToString()));
                }

                int forwardShared = SharedMemoryLayout.SimtForward(blockN, effectiveHeadDim);
                if (headDimValid && forwardShared > SharedMemoryLayout.Budget)
                {
                    int fits = 16;
                    while (SharedMemoryLayout.SimtForward(fits * 2, effectiveHeadDim) <= SharedMemoryLayout.Budget)
                        fits *= 2;
                    var where = options.Has("BlockN") ? options.LocationOf("BlockN") : options.LocationOf("HeadDim");
                    diagnostics.Add(DiagnosticInfo.Create(
                        DiagnosticDescriptors.SharedMemoryBudget,
                        where,
                        blockN.ToString(),
                        effectiveHeadDim.ToString(),
                        forwardShared.ToString(),
                        SharedMemoryLayout.Budget.ToString(),
                        fits.ToString()));
                }

                int backwardBlockM = blockM;
                while (backwardBlockM > 8 && SharedMemoryLayout.SimtBackwardKv(backwardBlockM, effectiveHeadDim) > SharedMemoryLayout.Budget)
                    backwardBlockM /= 2;
                return new SimtPlan(blockM, blockN, backwardBlockM, forwardShared);
            }

            /// <summary>Head grouping (GQA / MQA): query heads per KV head, or 0 when the tensors tell at run time.</summary>
            private static int ReadGrouping(Declared declared, List<DiagnosticInfo> diagnostics)
            {
                var options = declared.Options;
                int heads = declared.Heads, kvHeads = declared.KvHeads;
                if (heads < 0)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidGrouping, options.LocationOf("Heads"), $"Heads = {heads} must be positive, or 0 for any head count"));
                else if (kvHeads < 0)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidGrouping, options.LocationOf("KvHeads"), $"KvHeads = {kvHeads} must be positive, or 0 to read the grouping from the tensors"));
                else if (kvHeads > 0 && heads == 0)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidGrouping, options.LocationOf("KvHeads"), $"KvHeads = {kvHeads} needs Heads, the number of query heads it groups (for example Heads = {kvHeads * 4})"));
                else if (kvHeads > 0 && heads % kvHeads != 0)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidGrouping, options.LocationOf("KvHeads"), $"KvHeads = {kvHeads} does not divide Heads = {heads}; each KV head must serve the same number of query heads"));
                else if (heads > 0)
                    return kvHeads > 0 ? heads / kvHeads : 1;
                return 0;
            }

            /// <summary>Options that contradict each other.</summary>
            private static void CheckConflicts(Declared declared, List<DiagnosticInfo> diagnostics)
            {
                if (declared.BiasGradient && declared.Bias != BiasKind.Tensor)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ConflictingOptions, declared.Options.LocationOf("BiasGradient"), $"BiasGradient = true needs Bias = BiasKind.Tensor (this variant has Bias = BiasKind.{declared.Bias}, which has no gradient)"));
                else if (declared.BiasGradient && !declared.Backward)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ConflictingOptions, declared.Options.LocationOf("BiasGradient"), "BiasGradient = true needs Backward = true: the bias gradient is written by the backward kernels"));
            }

            /// <summary>
            /// Tensor cores take 16-bit inputs in k-steps of 16 (mma.sync.m16n8k16): fp16/bf16, any head dim the DSL takes (a
            /// multiple of 8 up to 256); one of 16·n + 8 computes over 8 more columns of zeros (in the shared tiles' rows and in
            /// the fragments read from global memory) and writes only its own. Tiles are chosen so that the shared memory fits the 48 KB budget
            /// (<see cref="SharedMemoryLayout"/>) and the registers the <see cref="TensorCoreRegisterBudget"/>: the forward's key
            /// tiles drop from 64 to 32 rows, then each kernel splits its output columns into slices (<see cref="ColumnSlices"/>).
            /// </summary>
            /// <returns>The tensor-core kernels' shape, or null when the variant has none.</returns>
            private static TensorCorePlan? PlanTensorCores(Declared declared)
            {
                int headDim = declared.HeadDim;
                if (declared.DType == DType.Float32 || headDim % 8 != 0 || headDim > TensorCoreMaxHeadDim)
                    return null;
                int forwardMTiles = TensorCoreForwardMTiles(headDim, declared.Mask);
                bool Fits(int dynamicBytes, int staticBytes) => dynamicBytes + staticBytes <= SharedMemoryLayout.Budget;

                // The forward: 64-key tiles where their shared memory and registers fit, else 32.
                int blockN = SharedMemoryLayout.TensorCoreBlockN;
                if (!Fits(SharedMemoryLayout.TensorCoreForward(headDim, forwardMTiles, blockN), SharedMemoryLayout.TensorCoreExchangeBytes)
                    || ForwardRegisters(headDim, forwardMTiles, blockN, ColumnSlices.StepDimOf(headDim)) > TensorCoreRegisterBudget)
                    blockN = SharedMemoryLayout.TensorCoreSmallBlockN;
                int forwardShared = SharedMemoryLayout.TensorCoreForward(headDim, forwardMTiles, blockN);
                if (!Fits(forwardShared, SharedMemoryLayout.TensorCoreExchangeBytes))
                    return null;
                var forwardColumns = SliceColumns(headDim, width => ForwardRegisters(headDim, forwardMTiles, blockN, width));

                // The backward: V's fragments from shared memory above HeadDim 64 where its tile fits; dK/dV and dQ sliced as needed.
                int blockQ = TensorCoreBackwardBlockQ(headDim), blockKv = TensorCoreBackwardBlockKv(headDim);
                bool vInShared = headDim > 64
                    && Fits(SharedMemoryLayout.TensorCoreBackwardKv(headDim, blockQ, vInShared: true), SharedMemoryLayout.TensorCoreBackwardKvStatic(blockQ));
                int kvShared = SharedMemoryLayout.TensorCoreBackwardKv(headDim, blockQ, vInShared);
                int qShared = SharedMemoryLayout.TensorCoreBackwardQ(headDim, blockKv);
                bool backward = declared.Backward
                    && Fits(kvShared, SharedMemoryLayout.TensorCoreBackwardKvStatic(blockQ))
                    && Fits(qShared, SharedMemoryLayout.TensorCoreExchangeBytes);
                var kvColumns = SliceColumns(headDim, width => BackwardKvRegisters(headDim, blockQ, vInShared, width));
                var qColumns = SliceColumns(headDim, width => BackwardQRegisters(headDim, blockKv, width));
                return new TensorCorePlan(
                    headDim, declared.DType == DType.BFloat16, blockN, forwardMTiles, forwardColumns, forwardShared,
                    backward, blockQ, blockKv, vInShared, kvColumns, qColumns, kvShared, qShared);
            }

            /// <summary>
            /// 32-bit registers a thread may give its fragments and accumulators, as the estimates below count them. The
            /// HeadDim 128 kernels, which the device conformance runs, come to 160 (forward), 176 (dK/dV) and 160 (dQ); 208
            /// leaves the compiler about 48 of the 255 for addresses, indices and fragments in flight. Past it a kernel
            /// splits its output columns into slices rather than spill.
            /// </summary>
            private const int TensorCoreRegisterBudget = 208;

            /// <summary>
            /// The forward's per thread: Q fragments (HeadDim / 4), O accumulators (Width / 2) and S (BlockN / 2) per m-tile,
            /// and the staged words of the next K or V tile (BlockN · HeadDim / 256).
            /// </summary>
            private static int ForwardRegisters(int headDim, int mTiles, int blockN, int width) =>
                mTiles * (ColumnSlices.StepDimOf(headDim) / 4 + width / 2 + blockN / 2) + (blockN * headDim / 4 + SharedMemoryLayout.TensorCoreThreads - 1) / SharedMemoryLayout.TensorCoreThreads * 2;

            /// <summary>The dK/dV pass's: K fragments (HeadDim / 4), V's unless they are in shared memory, dK and dV (Width / 2 each), Sᵀ and dPᵀ (BlockQ / 2 each).</summary>
            private static int BackwardKvRegisters(int headDim, int blockQ, bool vInShared, int width) =>
                ColumnSlices.StepDimOf(headDim) / 4 * (vInShared ? 1 : 2) + width + blockQ;

            /// <summary>The dQ pass's: Q and dO fragments (HeadDim / 4 each), dQ (Width / 2), S and dP (BlockKv / 2 each).</summary>
            private static int BackwardQRegisters(int headDim, int blockKv, int width) => ColumnSlices.StepDimOf(headDim) / 2 + width / 2 + blockKv;

            /// <summary>The fewest slices of whole 16-column steps whose registers fit the budget (one slice when the whole head dim fits).</summary>
            private static ColumnSlices SliceColumns(int headDim, Func<int, int> registers)
            {
                int steps = ColumnSlices.StepDimOf(headDim) / 16;
                for (int count = 1; count <= steps; count++)
                {
                    int width = 16 * ((steps + count - 1) / count);
                    // Widths that cover the head dim in fewer slices were tried already (9 steps: 3 slices of 48 before "4 of 48").
                    if ((steps * 16 + width - 1) / width == count && registers(width) <= TensorCoreRegisterBudget)
                        return new ColumnSlices(width, count, headDim);
                }
                return new ColumnSlices(16, steps, headDim);
            }

            /// <summary>
            /// The last step, for a declaration without diagnostics: the tensor-core kernels, the sm_90a modules, and the model
            /// that carries them with the declaration and the SIMT tiles.
            /// </summary>
            private static VariantModel PlanKernels(DeclarationSite site, Declared declared, SimtPlan simt, int groupSize, ModsModel? mods)
            {
                var (symbol, syntax) = (site.Symbol, site.Syntax);
                var (headDim, dtype, mask, bias) = (declared.HeadDim, declared.DType, declared.Mask, declared.Bias);
                bool hasScore = mods?.HasScore ?? false, hasMask = mods?.HasMask ?? false;
                // The sm_90a modules have no dropout code: a dropout variant carries none (its calls with p > 0 could not use
                // them, and a call with p = 0 through Fmha takes a variant without dropout), which also keeps their PTX out of
                // the assembly's 16 MB string heap.
                bool sm90a = !declared.Dropout;
                var hopperBackward = declared.Backward && sm90a
                    ? HopperPlan.BackwardFor(headDim, dtype, mask, bias, declared.BiasGradient, hasScore, hasMask)
                    : null;
                return new VariantModel
                {
                    Declaration = new Declaration
                    {
                        Namespace = symbol.ContainingType.ContainingNamespace.IsGlobalNamespace ? "" : symbol.ContainingType.ContainingNamespace.ToDisplayString(),
                        ContainingTypes = new EquatableArray<ContainingTypeInfo>(site.ContainingTypes),
                        DeclaringTypeName = MetadataName(symbol.ContainingType),
                        MethodName = symbol.Name,
                        MethodIdentifier = syntax.Identifier.Text,
                        MethodModifiers = Modifiers(syntax),
                        Mask = mask,
                        Bias = bias,
                        DType = dtype,
                        BiasGradient = declared.BiasGradient,
                        Backward = declared.Backward,
                        HeadDim = headDim,
                        Heads = declared.Heads,
                        KvHeads = declared.KvHeads,
                        GroupSize = groupSize,
                        Dropout = declared.Dropout,
                    },
                    Simt = simt,
                    Tc = PlanTensorCores(declared),
                    Hopper = !sm90a ? null
                        : mods is null ? HopperPlan.For(headDim, dtype, mask, bias)
                        : HopperPlan.ForMods(headDim, dtype, mask, bias, hasScore, hasMask),
                    HopperSmallGrid = !sm90a ? null
                        : mods is null ? HopperPlan.SmallGridFor(headDim, dtype, mask, bias)
                        : HopperPlan.SmallGridForMods(headDim, dtype, mask, bias, hasScore, hasMask, Mods.ModPtxWriter.ReadsTable(mods.Mask)),
                    HopperBackwardKv = hopperBackward?.Keys,
                    HopperBackwardV = hopperBackward?.Values,
                    HopperBackwardQ = hopperBackward?.Queries,
                    Mods = mods,
                };
            }

            /// <summary>
            /// 16-row m-tiles per warp of the tensor-core forward: 2 up to HeadDim 64 without a mask (Q fragments, O and S
            /// accumulators of two tiles fit in registers, and every K/V fragment from shared memory feeds two mma: K64 forward
            /// 2.86 → 2.47 ms on the H100), else 1 — above HeadDim 64 the forward already uses 255 registers, and with a causal or
            /// block-diagonal mask the 128-row groups skip less and mask more (K64 causal 1.62 → 1.86 ms, packed varlen 4.9 → 6.2).
            /// </summary>
            private static int TensorCoreForwardMTiles(int headDim, MaskKind mask) => headDim <= 64 && mask == MaskKind.None ? 2 : 1;

            /// <summary>
            /// Query rows per tile of the tensor-core dK/dV pass. Each thread holds dK and dV (HeadDim / 2 floats each), K and V
            /// fragments (HeadDim / 4 words each) and Sᵀ, dPᵀ (BlockQ / 4 floats each): 64 rows up to HeadDim 64 (~160 live
            /// registers at 64), 16 at HeadDim 128, where dK and dV alone take 128 and the shared tiles must stay under 48 KB.
            /// </summary>
            private static int TensorCoreBackwardBlockQ(int headDim) => headDim <= 64 ? 64 : 16;

            /// <summary>Key rows per tile of the tensor-core dQ pass: Q, dO fragments, dQ, S and dP live in registers.</summary>
            private static int TensorCoreBackwardBlockKv(int headDim) => headDim <= 64 ? 64 : 32;

            private static bool IsAccessibility(SyntaxKind kind) =>
                kind is SyntaxKind.PublicKeyword or SyntaxKind.InternalKeyword or SyntaxKind.PrivateKeyword or SyntaxKind.ProtectedKeyword;

            /// <summary>The modifiers a generated body repeats: accessibility, <c>static</c>, <c>unsafe</c>, then <c>partial</c> (nothing else the user wrote).</summary>
            private static string Modifiers(MethodDeclarationSyntax syntax) =>
                string.Join(" ", syntax.Modifiers
                    .Where(m => IsAccessibility(m.Kind()) || m.IsKind(SyntaxKind.StaticKeyword) || m.IsKind(SyntaxKind.UnsafeKeyword))
                    .Select(m => m.Text)
                    .Concat(new[] { "partial" }));

            /// <summary>Whether <paramref name="method"/> is the first [Attention] method of its type in source order.</summary>
            private static bool IsFirstVariantOfType(IMethodSymbol method)
            {
                var first = method.ContainingType.GetMembers()
                    .OfType<IMethodSymbol>()
                    .Where(m => m.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == AttributeName) && m.Locations.Any(l => l.IsInSource))
                    .OrderBy(m => m.Locations[0].SourceTree?.FilePath, StringComparer.Ordinal)
                    .ThenBy(m => m.Locations[0].SourceSpan.Start)
                    .FirstOrDefault();
                return SymbolEqualityComparer.Default.Equals(first, method);
            }

            private static readonly SymbolDisplayFormat StubTypeFormat = SymbolDisplayFormat.FullyQualifiedFormat
                .AddMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

            /// <summary>The stand-in body of a rejected declaration: its signature as the compiler resolved it, fully qualified.</summary>
            private static StubModel Stub(DeclarationSite site, string ids)
            {
                var (symbol, syntax) = (site.Symbol, site.Syntax);
                string refWord = symbol.RefKind switch { RefKind.Ref => "ref ", RefKind.RefReadOnly => "ref readonly ", _ => "" };
                var parameters = symbol.Parameters.Select(p =>
                    (p.IsThis ? "this " : "") + (p.IsParams ? "params " : "") +
                    p.RefKind switch { RefKind.Ref => "ref ", RefKind.Out => "out ", RefKind.In => "in ", RefKind.RefReadOnlyParameter => "ref readonly ", _ => "" } +
                    p.Type.ToDisplayString(StubTypeFormat) + " @" + p.Name);
                var type = symbol.ContainingType;
                return new StubModel(
                    type.ContainingNamespace.IsGlobalNamespace ? "" : type.ContainingNamespace.ToDisplayString(),
                    new EquatableArray<ContainingTypeInfo>(site.ContainingTypes),
                    MetadataName(type),
                    symbol.Name,
                    syntax.Identifier.Text,
                    Modifiers(syntax),
                    refWord + symbol.ReturnType.ToDisplayString(StubTypeFormat),
                    string.Join(", ", parameters),
                    ids);
            }

            private static bool IsPowerOfTwo(int value) => value > 0 && (value & (value - 1)) == 0;

            private static string Keyword(TypeDeclarationSyntax type) => type switch
            {
                RecordDeclarationSyntax record when record.ClassOrStructKeyword.IsKind(SyntaxKind.StructKeyword) => "record struct",
                RecordDeclarationSyntax => "record",
                StructDeclarationSyntax => "struct",
                InterfaceDeclarationSyntax => "interface",
                _ => "class",
            };

            /// <summary><c>Namespace.Outer+Inner</c>, names as declared (<c>class</c> for <c>@class</c>).</summary>
            private static string MetadataName(INamedTypeSymbol type)
            {
                var types = new Stack<string>();
                for (var t = type; t is not null; t = t.ContainingType)
                    types.Push(t.Name);
                var namespaces = new Stack<string>();
                for (var n = type.ContainingNamespace; n is { IsGlobalNamespace: false }; n = n.ContainingNamespace)
                    namespaces.Push(n.Name);
                return string.Join(".", namespaces.Concat(new[] { string.Join("+", types) }));
            }

            /// <summary>Reads the attribute's named arguments and finds each one's syntax for diagnostics.</summary>
            private sealed class Options
            {
                private readonly Dictionary<string, TypedConstant> values = new();
                private readonly AttributeSyntax? syntax;

                public Options(AttributeData attribute, AttributeSyntax? syntax)
                {
                    this.syntax = syntax;
                    foreach (var pair in attribute.NamedArguments)
                    {
                        if (pair.Value.Kind != TypedConstantKind.Error)
                            values[pair.Key] = pair.Value;
                    }
                }

                public bool Has(string name) => values.ContainsKey(name);

                /// <summary>A mod the attribute names (<c>ScoreMod = nameof(M)</c>), with the argument's expression; null when none (or null) is named.</summary>
                public ModReference? Mod(string name)
                {
                    if (!values.TryGetValue(name, out var value) || value.Value is not string text)
                        return null;
                    var expression = syntax?.ArgumentList?.Arguments.FirstOrDefault(a => a.NameEquals?.Name.Identifier.Text == name)?.Expression;
                    return new ModReference(text, expression);
                }

                public int Int(string name, int fallback) =>
                    values.TryGetValue(name, out var value) && value.Value is int i ? i : fallback;

                public bool Bool(string name, bool fallback) =>
                    values.TryGetValue(name, out var value) && value.Value is bool b ? b : fallback;

                /// <summary>A DSL enum's value; one the enum does not name is XFA0009 and reads as <paramref name="fallback"/>.</summary>
                public TEnum Enum<TEnum>(string name, TEnum fallback, List<DiagnosticInfo> diagnostics)
                    where TEnum : struct, System.Enum
                {
                    int value = Int(name, Convert.ToInt32(fallback));
                    var typed = (TEnum)(object)value;
                    if (System.Enum.IsDefined(typeof(TEnum), typed))
                        return typed;
                    diagnostics.Add(DiagnosticInfo.Create(
                        DiagnosticDescriptors.UnknownEnumValue, LocationOf(name), name, value.ToString(), typeof(TEnum).Name,
                        string.Join(", ", System.Enum.GetNames(typeof(TEnum)))));
                    return fallback;
                }

                /// <summary>The argument's own syntax (<c>HeadDim = 48</c>), else the attribute's.</summary>
                public LocationInfo? LocationOf(string name)
                {
                    if (syntax?.ArgumentList is { } list)
                    {
                        foreach (var argument in list.Arguments)
                        {
                            if (argument.NameEquals?.Name.Identifier.Text == name)
                                return LocationInfo.From(argument);
                        }
                    }
                    return LocationInfo.From(syntax);
                }
            }
        }
    }
}
