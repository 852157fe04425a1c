using System;
using XFormers.Dsl;

namespace XFormers.Generators.Models
{
    /// <summary>
    /// The sm_90a forward kernel's traits, FlashAttention-3's <c>kernel_traits.h</c> for one variant: tiles, pipeline stages,
    /// warpgroup roles and the shared-memory layout with its byte count. The PTX emitter and the generated launch record
    /// read these numbers; the runtime reads the launch record, so nothing is computed twice.
    /// </summary>
    /// <remarks>
    /// Shared memory holds Q (BlockM rows), <see cref="Stages"/> K tiles and as many V tiles (BlockN rows each), then the
    /// mbarriers. Every tile is stored as HeadDim / 64 column chunks of 64 elements (128 bytes a row, the 128-byte swizzle
    /// TMA writes and wgmma reads), each chunk rows × 128 bytes and 1024-byte aligned.
    /// </remarks>
    internal sealed record HopperPlan
    {
        /// <summary>Which kernel the plan is for: the forward, the backward's dK/dV pass or its dQ pass.</summary>
        public HopperKernel Kernel { get; init; } = HopperKernel.Forward;

        /// <summary>Columns of a chunk: 64 16-bit elements, one 128-byte swizzle row.</summary>
        public const int ChunkColumns = 64;

        /// <summary>Rows of a warpgroup's wgmma tile (m64nNk16).</summary>
        public const int WarpGroupRows = 64;

        public int HeadDim { get; init; }
        /// <summary>Query rows of a CTA: 64 for each consumer warpgroup.</summary>
        public int BlockM { get; init; }
        /// <summary>Key rows of a K or V tile (the N of S = Q Kᵀ, the k extent of O += P V).</summary>
        public int BlockN { get; init; }
        /// <summary>K/V tiles in flight (each stage a K tile and a V tile).</summary>
        public int Stages { get; init; }
        public int ConsumerWarpGroups { get; init; }
        /// <summary>Registers a producer thread keeps after <c>setmaxnreg.dec</c>.</summary>
        public int ProducerRegisters { get; init; }
        /// <summary>Registers a consumer thread gets with <c>setmaxnreg.inc</c>.</summary>
        public int ConsumerRegisters { get; init; }
        /// <summary>The inputs' type: Float16 or BFloat16.</summary>
        public DType DType { get; init; } = DType.Float16;
        public MaskKind Mask { get; init; }
        public BiasKind Bias { get; init; }
        /// <summary>Which gradients a dK/dV pass accumulates: both, or (HeadDim 256, two passes) dK or dV alone.</summary>
        public KvGradients Gradients { get; init; } = KvGradients.Both;
        /// <summary>Whether the dQ pass writes dBias (a tensor bias declared with BiasGradient).</summary>
        public bool BiasGradient { get; init; }
        /// <summary>Whether the variant has a score mod: the kernel applies it to each score (natural units).</summary>
        public bool ScoreMod { get; init; }
        /// <summary>Whether the variant has a mask mod: the kernel walks the launch's block list and masks its partial tiles.</summary>
        public bool MaskMod { get; init; }

        /// <summary>
        /// Throughput of one CTA of this plan relative to the variant's first plan, as measured on the H200 (the runtime
        /// weighs grids by it): 2-warpgroup CTAs at HeadDim 64 ran at 0.82 of the 3-warpgroup ones (321 vs 391 TFLOP/s).
        /// </summary>
        public double RelativeThroughput { get; init; } = 1.0;

        public int Threads => (ConsumerWarpGroups + 1) * 128;
        public int Chunks => HeadDim / ChunkColumns;
        public int QBytes => BlockM * HeadDim * 2;
        public int KvTileBytes => BlockN * HeadDim * 2;
        /// <summary>
        /// Tiles loaded once a CTA (BlockM rows each): Q for the forward; Q and dO for the dQ pass; K and V for the dK/dV
        /// pass, whose rings then stream Q and dO tiles (BlockN rows) in the places of K and V.
        /// </summary>
        public int ResidentTiles => Kernel == HopperKernel.Forward ? 1 : 2;
        public int KOffset => ResidentTiles * QBytes;
        public int VOffset => KOffset + Stages * KvTileBytes;
        /// <summary>
        /// The dK/dV pass's per-stage row vectors: −log2(e) · Lse and Delta of the stage's BlockN query rows (fp32 each),
        /// written by the producer's second warp; none elsewhere.
        /// </summary>
        public int StageVectorBytes => Kernel == HopperKernel.BackwardKv ? 2 * BlockN * 4 : 0;
        public int VectorOffset => VOffset + Stages * KvTileBytes;
        public int BarrierOffset => VectorOffset + Stages * StageVectorBytes;
        /// <summary>One Q barrier, then full and empty barriers for each K stage and each V stage.</summary>
        public int Barriers => 1 + 4 * Stages;
        /// <summary>Dynamic shared memory the kernel asks for (the one formula: the runtime passes this number to the driver).</summary>
        public int SharedBytes => BarrierOffset + Barriers * 8;

        /// <summary>PTX element type of Q, K, V, O: f16 or bf16.</summary>
        public string Element => DType == DType.BFloat16 ? "bf16" : "f16";
        public bool TensorBias => Bias == BiasKind.Tensor;
        public bool Alibi => Bias == BiasKind.Alibi;
        public bool Causal => Mask.IsCausal();
        public bool BlockDiagonal => Mask.IsBlockDiagonal();
        /// <summary>The causal diagonal at the bottom-right corner (of the problem, or of each segment).</summary>
        public bool FromBottomRight => Mask.IsFromBottomRight();
        /// <summary>A sliding window below the diagonal; the module takes it as its last parameter, <c>window</c>.</summary>
        public bool Local => Mask.IsLocal();
        public bool HasBias => TensorBias || Alibi;
        /// <summary>Whether scores are formed in natural units (scale · qk + bias, then the score mod) before the exp2 softmax.</summary>
        public bool NaturalScores => HasBias || ScoreMod;

        /// <summary>Shared memory an sm_90 CTA may use (227 KB).</summary>
        public const int SharedMemoryLimit = 227 * 1024;

        /// <summary>
        /// The plan for a 16-bit variant whose head dim is a multiple of 64 up to 256, else null (the mma.sync kernels serve
        /// it). Consumer warpgroups own 64 query rows each: three at HeadDim 64 (a 192-row CTA; S, O and P take 64 + 32 + 32
        /// registers of the 160 each gets), two above (240 registers each: S and O take 64 + 64 at HeadDim 128). 128-key tiles
        /// up to HeadDim 128; 64-key tiles above, where O alone takes HeadDim / 2 registers. Stages fill what shared memory
        /// allows, up to 4 (one CTA an SM either way). The register split keeps (producers · 24 + consumers · their count)
        /// · 128 within the SM's 65536.
        /// </summary>
        public static HopperPlan? For(int headDim, DType dtype, MaskKind mask, BiasKind bias) =>
            For(headDim, dtype, mask, bias, ThreeConsumers(headDim, bias) ? 3 : 2);

        /// <summary>
        /// Three consumer warpgroups at HeadDim 64, except with a tensor bias: its per-element loads do not fit the 160
        /// registers a consumer gets then (ptxas spilled 112–144 bytes a thread on the H200), so those keep two.
        /// </summary>
        private static bool ThreeConsumers(int headDim, BiasKind bias) => headDim <= 64 && bias != BiasKind.Tensor;

        /// <summary>
        /// A second plan for grids the first fills badly: at HeadDim 64, 128-row CTAs (two consumer warpgroups), which
        /// the runtime takes when the 192-row grid would leave most of its last wave idle (B2 H8 M2048: 176 CTAs on 132 SMs).
        /// </summary>
        public static HopperPlan? SmallGridFor(int headDim, DType dtype, MaskKind mask, BiasKind bias) =>
            ThreeConsumers(headDim, bias) && For(headDim, dtype, mask, bias, 2) is { } plan ? plan with { RelativeThroughput = 0.82 } : null;

        /// <summary>
        /// The backward's passes for a 16-bit variant with HeadDim 64, 128 or 256, else null (the mma.sync kernels serve it).
        /// All have two consumer warpgroups of 240 registers and 128 resident rows. dK/dV: 128 keys a CTA, 64-query tiles
        /// streamed (dK, dV, Sᵀ, dPᵀ and the packed Pᵀ, dSᵀ take 64 + 64 + 32 + 32 + 32 registers at HeadDim 128). dQ: 128
        /// queries a CTA, key tiles of 128 at HeadDim 64 and 64 at 128 (dQ, S, dP and the packed dS: 64 + 32 + 32 + 16 at
        /// HeadDim 128). At HeadDim 256 dK and dV would take 256 registers together, so a dK pass and a dV pass share the
        /// work (the dV pass recomputes Sᵀ and skips dPᵀ), and every streamed tile is 32 rows: two resident 128 × 256 tiles
        /// take 128 KB of the 227.
        /// </summary>
        /// <remarks>
        /// With mods, the streamed tiles are half as long where the registers are tight (dK/dV at HeadDim 128: 32 queries;
        /// dQ at HeadDim 64: 64 keys), so that a mod's per-element code, its derivative included, fits beside the
        /// accumulators.
        /// </remarks>
        public static (HopperPlan Keys, HopperPlan? Values, HopperPlan Queries)? BackwardFor(
            int headDim, DType dtype, MaskKind mask, BiasKind bias, bool biasGradient, bool scoreMod = false, bool maskMod = false)
        {
            if (For(headDim, dtype, mask, bias, 2) is not { } forward)
                return null;
            bool mods = scoreMod || maskMod;
            forward = forward with { ScoreMod = scoreMod, MaskMod = maskMod };
            int streamed = headDim <= 64 ? 128 : headDim <= 128 ? 64 : 32;
            int keysStreamed = mods && headDim > 64 ? 32 : Math.Min(64, streamed);
            int queriesStreamed = mods ? Math.Min(64, streamed) : streamed;
            var keys = Fill(forward with
            {
                Kernel = HopperKernel.BackwardKv, BlockM = 128, BlockN = keysStreamed, Stages = 2,
                Gradients = headDim <= 128 ? KvGradients.Both : KvGradients.Keys,
            });
            var values = headDim <= 128 ? null : keys with { Gradients = KvGradients.Values };
            var queries = Fill(forward with
            {
                Kernel = HopperKernel.BackwardQ, BlockM = 128, BlockN = queriesStreamed, Stages = 2,
                BiasGradient = biasGradient && bias == BiasKind.Tensor,
            });
            return keys.SharedBytes <= SharedMemoryLimit && queries.SharedBytes <= SharedMemoryLimit ? (keys, values, queries) : null;
        }

        /// <summary>As many stages as 227 KB allow, up to 4.</summary>
        private static HopperPlan Fill(HopperPlan plan)
        {
            while (plan.Stages < 4 && (plan with { Stages = plan.Stages + 1 }).SharedBytes <= SharedMemoryLimit)
                plan = plan with { Stages = plan.Stages + 1 };
            return plan;
        }

        /// <summary>
        /// The forward plan of a variant with mods: the consumer warpgroups of <see cref="For(int, DType, MaskKind, BiasKind)"/> (three at
        /// HeadDim 64), the mods' code beside the softmax's.
        /// </summary>
        public static HopperPlan? ForMods(int headDim, DType dtype, MaskKind mask, BiasKind bias, bool scoreMod, bool maskMod) =>
            For(headDim, dtype, mask, bias) is { } plan ? plan with { ScoreMod = scoreMod, MaskMod = maskMod } : null;

        /// <summary>
        /// The second grid (<see cref="SmallGridFor"/>) of a variant with mods. Where every score runs a score mod, or a mask
        /// mod that reads a table, the consumers are busy with per-score ALU work and loads rather than waiting on wgmma,
        /// and a 128-row CTA does as much a row as a 192-row one (H200, B4 H16 M4096 K64: ALiBi as a score mod 0.502 against
        /// 0.525 ms, softcap 0.585 against 0.586; B1 H16 M16384, document mask 0.261 against 0.357): its relative
        /// throughput is 1, so the launcher takes it whenever its waves cost no more. Otherwise 0.82, as without mods
        /// (a mask mod of positions alone: causal 0.414 against 0.392, prefix-LM 0.434 against 0.388).
        /// </summary>
        public static HopperPlan? SmallGridForMods(int headDim, DType dtype, MaskKind mask, BiasKind bias, bool scoreMod, bool maskMod, bool maskReadsTable) =>
            SmallGridFor(headDim, dtype, mask, bias) is { } plan
                ? plan with { ScoreMod = scoreMod, MaskMod = maskMod, RelativeThroughput = scoreMod || maskReadsTable ? 1.0 : plan.RelativeThroughput }
                : null;

        private static HopperPlan? For(int headDim, DType dtype, MaskKind mask, BiasKind bias, int consumers)
        {
            if (dtype == DType.Float32 || headDim % ChunkColumns != 0 || headDim > 256)
                return null;
            int blockM = consumers * WarpGroupRows;
            int blockN = headDim <= 128 ? 128 : 64;
            var plan = new HopperPlan
            {
                HeadDim = headDim,
                BlockM = blockM,
                BlockN = blockN,
                Stages = 2,
                ConsumerWarpGroups = consumers,
                ProducerRegisters = 24,
                ConsumerRegisters = consumers == 3 ? 160 : 240,
                DType = dtype,
                Mask = mask,
                Bias = bias,
            };
            plan = Fill(plan);
            return plan.SharedBytes <= SharedMemoryLimit ? plan : null;
        }
    }

    /// <summary>The gradients a dK/dV pass accumulates.</summary>
    internal enum KvGradients
    {
        Both,
        Keys,
        Values,
    }

    /// <summary>The three sm_90a kernels a variant can have.</summary>
    internal enum HopperKernel
    {
        Forward,
        /// <summary>dK and dV: a CTA owns key rows and streams the query tiles that see them.</summary>
        BackwardKv,
        /// <summary>dQ (and dBias): a CTA owns query rows and streams the key tiles they see, like the forward.</summary>
        BackwardQ,
    }
}
