using XFormers.Dsl;

namespace XFormers.Generators.Models
{
    /// <summary>
    /// One attention variant, fully decided: every value the templates print is computed here, so the
    /// emit stage only formats. Plain data with value equality (incremental caching depends on it).
    /// </summary>
    internal sealed record VariantModel
    {
        // Where the declaration lives.
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
        public string KernelClassName { get; init; } = "";

        // The declared constants.
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
        public int BlockM { get; init; }
        public int BlockN { get; init; }
        /// <summary>Query rows per shared-memory tile in the dK/dV pass (its groups have BlockN threads).</summary>
        public int BackwardBlockM { get; init; }

        // Decisions for the templates.
        public string ElementType { get; init; } = "float";
        public string StoreElement { get; init; } = "";
        public bool CausalTopLeft { get; init; }
        public bool CausalBottomRight { get; init; }
        public bool BlockDiagonal { get; init; }
        public bool BlockDiagonalCausal { get; init; }
        /// <summary>The causal diagonal sits at the bottom-right corner (of the problem, or of each segment).</summary>
        public bool FromBottomRight { get; init; }
        /// <summary>A sliding window below the diagonal, of <c>a.Window</c> keys (a run-time value).</summary>
        public bool LocalWindow { get; init; }
        public bool TensorBias { get; init; }
        public bool Alibi { get; init; }
        public string GroupSizeExpression { get; init; } = "a.GroupSize";
        /// <summary>Shared memory of the SIMT forward's group (its K and V tiles): <see cref="SharedMemoryLayout.SimtForward"/>.</summary>
        public int ForwardSharedBytes { get; init; }

        // The tensor-core path (fp16/bf16, every head dim): warp tiles of mma.sync.m16n8k16, loops unrolled by the template.
        /// <summary>Whether Templates/TensorCore.liquid emits tensor-core kernels for this variant.</summary>
        public bool TensorCore { get; init; }
        /// <summary>Query rows per group: 16 per warp.</summary>
        public int TcBlockM { get; init; }
        /// <summary>Key rows per shared-memory tile of the forward (64, or 32 where 64 do not fit).</summary>
        public int TcBlockN { get; init; }
        public int TcThreads { get; init; }
        /// <summary>Last index of the head-dim k-steps of Q·Kᵀ (HeadDim rounded up to 16, / 16 − 1).</summary>
        public int TcKStepLast { get; init; }
        /// <summary>Halves per shared row of a tile: <see cref="SharedMemoryLayout.TensorCoreRow"/>.</summary>
        public int TcRow { get; init; }
        /// <summary>The k-step whose last 8 columns are zeros (a head dim of 16·n + 8: n), or −1.</summary>
        public int TcZeroStep { get; init; } = -1;
        /// <summary>Last index of the 8-column tiles of a BlockN-wide score row.</summary>
        public int TcSTileLast { get; init; }
        /// <summary>Last index of the 16-column pairs of those tiles (also the k-steps of P·V).</summary>
        public int TcSPairLast { get; init; }
        /// <summary>The forward's O columns per group (one slice up to HeadDim 208).</summary>
        public ColumnSlices TcFwdColumns { get; init; } = ColumnSlices.Whole(0);
        /// <summary>Last index of the 8-byte words a thread stages of a TcBlockN-row K or V tile (⌈TcBlockN · HeadDim / 4 / TcThreads⌉ − 1).</summary>
        public int TcStageLast { get; init; }
        /// <summary>Whether TcThreads does not divide a tile's words (head dims of 16·n + 8 with 32-key tiles): the last stage tests its word.</summary>
        public bool TcStageRagged { get; init; }
        /// <summary>16-row m-tiles per warp in the tensor-core forward (2 up to HeadDim 64 without a mask: each K/V fragment feeds two mma; else 1).</summary>
        public int TcFwdMTiles { get; init; }
        /// <summary>TcFwdMTiles − 1.</summary>
        public int TcFwdMTileLast { get; init; }
        /// <summary>Dynamic shared memory of the tensor-core forward: <see cref="SharedMemoryLayout.TensorCoreForward"/>.</summary>
        public int TcForwardSharedBytes { get; init; }
        /// <summary>Whether the tensor-core backward (a dK/dV pass and a dQ pass) is emitted too: Backward = true.</summary>
        public bool TcBackward { get; init; }
        /// <summary>Query rows per shared-memory tile of the dK/dV pass (its groups own TcBlockM keys).</summary>
        public int TcBwdBlockQ { get; init; }
        /// <summary>Last index of the 8-column tiles of a TcBwdBlockQ-wide Sᵀ row.</summary>
        public int TcBwdQTileLast { get; init; }
        /// <summary>Last index of the 16-query k-steps of dV += Pᵀ dO and dK += dSᵀ Q.</summary>
        public int TcBwdQPairLast { get; init; }
        /// <summary>Key rows per shared-memory tile of the dQ pass (its groups own TcBlockM queries).</summary>
        public int TcBwdBlockKv { get; init; }
        /// <summary>Last index of the 8-column tiles of a TcBwdBlockKv-wide S row.</summary>
        public int TcBwdKvTileLast { get; init; }
        /// <summary>Last index of the 16-key k-steps of dQ += dS K.</summary>
        public int TcBwdKvPairLast { get; init; }
        /// <summary>
        /// Whether the dK/dV pass reads V's A fragments from a shared tile at each use instead of holding them in
        /// registers (HeadDim 128: dK, dV, K and V in registers would need ~210 of the 255 a thread can have).
        /// </summary>
        public bool TcBwdVInShared { get; init; }
        /// <summary>The dK/dV pass's dK and dV columns per group.</summary>
        public ColumnSlices TcBwdKvColumns { get; init; } = ColumnSlices.Whole(0);
        /// <summary>The dQ pass's dQ columns per group.</summary>
        public ColumnSlices TcBwdQColumns { get; init; } = ColumnSlices.Whole(0);
        /// <summary>Threads per row of the D pass: the largest power of two, at most 32, that divides HeadDim / 4 (each reads HeadDim / 4 / TcDeltaLanes words of 8 bytes).</summary>
        public int TcDeltaLanes { get; init; }
        /// <summary>Dynamic shared memory of the dK/dV pass: <see cref="SharedMemoryLayout.TensorCoreBackwardKv"/>.</summary>
        public int TcBackwardKvSharedBytes { get; init; }
        /// <summary>Dynamic shared memory of the dQ pass: <see cref="SharedMemoryLayout.TensorCoreBackwardQ"/>.</summary>
        public int TcBackwardQSharedBytes { get; init; }
        public string TcMma { get; init; } = "";
        /// <summary>The dot product of four packed elements (TensorCore.Dot4Half or Dot4BFloat16), for the D pass.</summary>
        public string TcDot4 { get; init; } = "";
        public string TcPack { get; init; } = "";
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
        /// <summary>
        /// Whether the kernels apply dropout (<c>Dropout = true</c>): the forward scales P by the Philox mask and 1 / (1 − p)
        /// after the row sum, the backward regenerates the mask for dV and dP (<c>Kernels/Dropout.cs</c>). The sm_90a modules
        /// have no dropout code, so a dropout variant has none (<see cref="Hopper"/> and the backward's plans are null).
        /// </summary>
        public bool Dropout { get; init; }
        /// <summary>The declaration's settings as one line, for comments and the variant's description.</summary>
        public string Summary { get; init; } = "";
    }

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
