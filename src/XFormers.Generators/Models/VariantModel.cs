using XFormers.Dsl;

namespace XFormers.Generators.Models
{
    /// <summary>
    /// One attention variant, fully decided: the declaration as written, then a plan per kernel family (SIMT, tensor
    /// cores, sm_90a), so that the emit stage only formats. Plain data with value equality (incremental caching depends
    /// on it); what follows from the stored values is a computed property, not another field.
    /// </summary>
    /// <remarks>
    /// The templates see <see cref="Declaration"/>'s members by name (<c>head_dim</c>, <c>mask</c>, <c>dropout</c>) and
    /// the plans through theirs (<c>simt.block_m</c>, <c>tc.k_steps</c>).
    /// </remarks>
    internal sealed record VariantModel
    {
        public Declaration Declaration { get; init; } = new();
        public SimtPlan Simt { get; init; } = new(0, 0, 0, 0);
        /// <summary>
        /// The mma.sync kernels of Templates/TensorCore.liquid and the kernel templates it includes (fp16/bf16, every
        /// head dim), else null.
        /// </summary>
        public TensorCorePlan? Tc { get; init; }
        /// <summary>The sm_90a forward's traits (fp16/bf16, HeadDim a multiple of 64 up to 256), else null.</summary>
        public HopperPlan? Hopper { get; init; }
        /// <summary>The sm_90a forward's second plan, for grids that fill the device badly with the first (HeadDim 64), else null.</summary>
        public HopperPlan? HopperSmallGrid { get; init; }
        /// <summary>The sm_90a backward's dK/dV pass (fp16/bf16 with a backward, HeadDim 64, 128 or 256; dK alone at 256), else null.</summary>
        public HopperPlan? HopperBackwardKv { get; init; }
        /// <summary>The sm_90a backward's dV pass where dK and dV take a pass each (HeadDim 256), else null.</summary>
        public HopperPlan? HopperBackwardV { get; init; }
        /// <summary>The sm_90a backward's dQ (and dBias) pass, present with <see cref="HopperBackwardKv"/>.</summary>
        public HopperPlan? HopperBackwardQ { get; init; }
        /// <summary>The score and mask mods the declaration names, compiled; null when it names none.</summary>
        public ModsModel? Mods { get; init; }

        /// <summary>The declaration's settings as one line, for comments and the variant's description.</summary>
        public string Summary
        {
            get
            {
                var d = Declaration;
                string kvHeads = d.KvHeads > 0 ? d.KvHeads.ToString() : d.Heads > 0 ? d.Heads.ToString() : "any";
                return $"Mask = {d.Mask}, Bias = {d.Bias}{(d.BiasGradient ? " (with gradient)" : "")}, HeadDim = {d.HeadDim}, " +
                       $"DType = {d.DType}, Heads = {(d.Heads > 0 ? d.Heads.ToString() : "any")}, KvHeads = {kvHeads}, " +
                       $"BlockM = {Simt.BlockM}, BlockN = {Simt.BlockN}, Backward = {(d.Backward ? "yes" : "no")}" +
                       (Mods is { HasScore: true } ? ", score mod " + Mods.ScoreMethod : "") +
                       (Mods is { HasMask: true } ? ", mask mod " + Mods.MaskMethod : "") +
                       (d.Dropout ? ", dropout" : "");
            }
        }
    }

    /// <summary>What the user declared: where the method lives and the attribute's values (defaults filled in).</summary>
    internal sealed record Declaration
    {
        /// <summary>The namespace as C# code (keywords escaped), or empty for the global namespace.</summary>
        public string Namespace { get; init; } = "";
        public EquatableArray<ContainingTypeInfo> ContainingTypes { get; init; } = EquatableArray<ContainingTypeInfo>.Empty;
        /// <summary>Metadata-style name of the declaring type, e.g. <c>MyApp.Kernels+Inner</c>.</summary>
        public string DeclaringTypeName { get; init; } = "";
        /// <summary>The method's name, e.g. <c>void</c> for <c>@void</c>.</summary>
        public string MethodName { get; init; } = "";
        /// <summary>The method's name as C# code, e.g. <c>@void</c>.</summary>
        public string MethodIdentifier { get; init; } = "";
        /// <summary>The method's modifiers, e.g. <c>public static partial</c> (no comments or line breaks: edits to those re-run nothing).</summary>
        public string MethodModifiers { get; init; } = "";

        public MaskKind Mask { get; init; }
        public BiasKind Bias { get; init; }
        public DType DType { get; init; } = DType.Float16;
        public bool BiasGradient { get; init; }
        public bool Backward { get; init; }
        public int HeadDim { get; init; }
        public int Heads { get; init; }
        public int KvHeads { get; init; }
        /// <summary>Query heads per KV head, or 0 when read from the tensors at run time.</summary>
        public int GroupSize { get; init; }
        /// <summary>
        /// Whether the kernels apply dropout (<c>Dropout = true</c>): the forward scales P by the Philox mask and 1 / (1 − p)
        /// after the row sum, the backward regenerates the mask for dV and dP (<c>Kernels/Dropout.cs</c>). The sm_90a modules
        /// have no dropout code, so a dropout variant has none (<see cref="VariantModel.Hopper"/> and the backward's plans are null).
        /// </summary>
        public bool Dropout { get; init; }

        /// <summary>The class that holds the generated kernels: the method's name behind the reserved prefix.</summary>
        public string KernelClassName => AttentionGenerator.ReservedPrefix + MethodName;
        public string ElementType => DType switch { DType.Float32 => "float", DType.Float16 => "global::ILGPU.Half", _ => "global::XFormers.BFloat16" };
        public string StoreElement => DType switch { DType.Float32 => "ToSingle", DType.Float16 => "ToHalf", _ => "ToBFloat16" };
        public bool CausalTopLeft => Mask == MaskKind.Causal;
        public bool CausalBottomRight => Mask is MaskKind.CausalFromBottomRight or MaskKind.CausalLocalFromBottomRight;
        public bool BlockDiagonal => Mask.IsBlockDiagonal();
        public bool BlockDiagonalCausal => Mask.IsBlockDiagonal() && Mask.IsCausal();
        /// <summary>The causal diagonal sits at the bottom-right corner (of the problem, or of each segment).</summary>
        public bool FromBottomRight => Mask.IsFromBottomRight();
        /// <summary>A sliding window below the diagonal, of <c>a.Window</c> keys (a run-time value).</summary>
        public bool LocalWindow => Mask.IsLocal();
        public bool TensorBias => Bias == BiasKind.Tensor;
        public bool Alibi => Bias == BiasKind.Alibi;
        /// <summary>Query heads per KV head in the kernels: the declared constant, else the launch's.</summary>
        public string GroupSizeExpression => GroupSize > 0 ? GroupSize.ToString() : "a.GroupSize";
    }

    /// <summary>The SIMT kernels' tiles (every dtype; the CPU accelerator and fp32 run only these).</summary>
    /// <param name="BlockM">Query rows per group of the forward and the dQ pass (one thread a row).</param>
    /// <param name="BlockN">Key rows per shared-memory tile of the forward and the dQ pass.</param>
    /// <param name="BackwardBlockM">Query rows per shared-memory tile in the dK/dV pass (its groups have BlockN threads).</param>
    /// <param name="ForwardSharedBytes">
    /// Shared memory of the forward's group (its K and V tiles, <see cref="SharedMemoryLayout.SimtForward"/>): the generated
    /// <c>AttentionVariant.ForwardSharedBytes</c>, which <c>AttentionKernel.CanRunOn</c> compares with the device's.
    /// </param>
    internal sealed record SimtPlan(int BlockM, int BlockN, int BackwardBlockM, int ForwardSharedBytes);

    /// <summary>The dispatch table of one declaring type: the variants it registers at load.</summary>
    /// <param name="MethodIdentifiers">The variants' methods as C# code, in ordinal order.</param>
    internal sealed record RegistryModel(
        string Namespace,
        EquatableArray<ContainingTypeInfo> ContainingTypes,
        string DeclaringTypeName,
        string HintName,
        EquatableArray<string> MethodIdentifiers);

    /// <summary>What Templates/Hopper.liquid prints: the variant, its sm_90a plan, and the PTX as a verbatim-string body.</summary>
    internal sealed record HopperSource(
        VariantModel Variant, HopperPlan Plan, string EntryPoint, string Ptx, HopperPlan? SmallGrid, string SmallGridPtx,
        HopperPlan? BackwardKv, HopperPlan? BackwardV, HopperPlan? BackwardQ, string BackwardPtx)
    {
        public string BackwardVEntryPoint => Hopper.HopperBackwardEmitter.ValuesEntryPoint;
        public string BackwardKvEntryPoint => Hopper.HopperBackwardEmitter.KeysAndValuesEntryPoint;
        public string BackwardQEntryPoint => Hopper.HopperBackwardEmitter.QueriesEntryPoint;
    }

    /// <summary>One variant's generated file.</summary>
    internal sealed record VariantFile(string HintName, VariantModel Model);

    /// <summary>
    /// The body of a declaration the generator rejected: it only throws, so the user reads the XFA error and not also the
    /// compiler's CS8795 (a partial method without an implementation). Made only when the declaration's signature can be
    /// implemented as written.
    /// </summary>
    /// <param name="Modifiers">The accessibility, <c>static</c>, <c>unsafe</c> and <c>partial</c> the declaration has, in that order.</param>
    /// <param name="ReturnType">The return type as C# code, fully qualified, with <c>ref</c> or <c>ref readonly</c>.</param>
    /// <param name="Parameters">The parameter list's contents as C# code, fully qualified.</param>
    /// <param name="Ids">The XFA IDs reported, e.g. <c>XFA0004, XFA0007</c>.</param>
    internal sealed record StubModel(
        string Namespace,
        EquatableArray<ContainingTypeInfo> ContainingTypes,
        string DeclaringTypeName,
        string MethodName,
        string MethodIdentifier,
        string Modifiers,
        string ReturnType,
        string Parameters,
        string Ids);

    /// <summary>A rejected declaration's stand-in file.</summary>
    internal sealed record StubFile(string HintName, StubModel Model);

    /// <summary>Every file the generator adds, with hint names that do not clash.</summary>
    internal sealed record FilePlan(EquatableArray<VariantFile> Variants, EquatableArray<RegistryModel> Registries, EquatableArray<StubFile> Stubs);
}
