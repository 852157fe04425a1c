using System.Collections.Generic;
using System.Linq;
using System.Text;
using XFormers.Dsl;
using XFormers.Generators.Models;
using XFormers.Generators.Mods;

namespace XFormers.Generators.Hopper
{
    /// <summary>
    /// The forward kernel of one variant as an sm_90a PTX module, in FlashAttention-3's shape (Shah et al. 2024):
    /// a producer warpgroup whose one thread issues TMA loads of Q and of the K/V tiles into a ring of
    /// <see cref="HopperPlan.Stages"/> stages guarded by mbarriers, and consumer warpgroups of 64 query rows each that
    /// compute S = Q Kᵀ with wgmma from shared memory, the online softmax in registers (exp2), and O += P V with P
    /// from registers. The producer gives its registers to the consumers (setmaxnreg). Only tiles that cut a row's
    /// visible key range pay for the mask; tiles no row sees are never loaded.
    /// Grid: (ceil(Mq / BlockM), Hq, B); block: (ConsumerWarpGroups + 1) · 128 threads.
    /// </summary>
    /// <remarks>
    /// Parameters, in order (the runtime's <c>HopperLauncher</c> passes them so): tensor maps of Q [B, Mq, Hq, K],
    /// K and V [B, Mkv, Hkv, K] (128 bytes each, by value); O, Lse; the bias, its four element strides; the ALiBi
    /// slopes; QSegment, QStart, KvStart; Mq, Mkv, Hq, GroupSize (u32); scale and scale · log2(e) (f32).
    /// </remarks>
    internal sealed class HopperForwardEmitter : HopperEmitter
    {
        public const string EntryPoint = "xformers_forward_sm90a";

        private const string KeyMaskComment = "Mask only where the tile cuts a row's visible keys (columns past Mkv included).";

        /// <summary>Whether this is the backward's dQ pass (<see cref="HopperKernel.BackwardQ"/>) rather than the forward.</summary>
        private readonly bool dq;

        private HopperForwardEmitter(HopperPlan plan, ModsModel? mods = null)
            : base(plan, mods)
        {
            dq = plan.Kernel == HopperKernel.BackwardQ;
        }

        /// <summary>The whole module: header, the one entry point, its body.</summary>
        public static string Emit(HopperPlan plan, string summary, ModsModel? mods = null)
        {
            var emitter = new HopperForwardEmitter(plan, mods);
            emitter.Kernel();
            return Header("the sm_90a forward", summary, Tiles(plan)) + emitter.Entry(EntryPoint, WithWindow(plan, WithMods(plan, Parameters)));
        }

        /// <summary>The dQ pass's entry point (its module's header is the caller's).</summary>
        public static string EmitBackwardQ(HopperPlan plan, ModsModel? mods = null)
        {
            var emitter = new HopperForwardEmitter(plan, mods);
            emitter.Kernel();
            return emitter.Entry(HopperBackwardEmitter.QueriesEntryPoint, WithWindow(plan, WithMods(plan, HopperBackwardEmitter.Parameters)));
        }

        /// <summary>The forward's passes end with O's poisoning; the dQ pass's with K sanitized (dQ += dS K).</summary>
        protected override HopperMode[] Modes => dq
            ? new[] { HopperMode.Fast, HopperMode.Sanitize }
            : new[] { HopperMode.Fast, HopperMode.Sanitize, HopperMode.Poison };

        /// <summary>The entry point's parameters, in the order HopperLauncher passes them.</summary>
        private static readonly string[] Parameters =
        {
            ".param .align 64 .b8 tmap_q[128]",
            ".param .align 64 .b8 tmap_k[128]",
            ".param .align 64 .b8 tmap_v[128]",
            ".param .u64 o",
            ".param .u64 lse",
            ".param .u64 bias",
            ".param .u64 bias_stride_b",
            ".param .u64 bias_stride_h",
            ".param .u64 bias_stride_m",
            ".param .u64 bias_stride_n",
            ".param .u64 alibi_slopes",
            ".param .u64 q_segment",
            ".param .u64 q_start",
            ".param .u64 kv_start",
            ".param .u32 mq",
            ".param .u32 mkv",
            ".param .u32 hq",
            ".param .u32 group_size",
            ".param .f32 scale",
            ".param .f32 scale_log2",
        };

        // Registers every role reads.
        private Reg h, hk, mq, mkv, hq, m0, kvBegin, nTiles;

        /// <summary>The S = Q Kᵀ accumulator of a consumer thread (m64nBlockN: BlockN / 2 floats).</summary>
        private RegArray s = null!;
        /// <summary>The O accumulator (m64nHeadDim: HeadDim / 2 floats).</summary>
        private RegArray o = null!;
        /// <summary>P as the A operand of O += P V: four packed pairs a 16-key k-step.</summary>
        private RegArray p = null!;

        // ---------------------------------------------------------------- setup (every thread)

        protected override void Setup()
        {
            w.Comment("Block coordinates, sizes, and this CTA's key range (every role computes the same).");
            tid = w.U32("thread");
            h = w.U32("h");
            b = w.U32("b");
            hk = w.U32("hk");
            mq = w.S32("mq");
            mkv = w.S32("mkv");
            hq = w.U32("hq");
            var group = w.U32("group");
            var mBlock = w.U32("m_block");
            w.Op("mov.u32", tid, "%tid.x");
            w.Op("mov.u32", h, "%ctaid.y");
            w.Op("mov.u32", b, "%ctaid.z");
            if (plan.Causal)
            {
                w.Comment("Causal: the CTAs with the most keys go first (the grid's last m-block is its first CTA).");
                var count = w.U32("m_blocks");
                w.Op("mov.u32", count, "%nctaid.x");
                w.Op("sub.u32", count, count, 1);
                w.Op("mov.u32", mBlock, "%ctaid.x");
                w.Op("sub.u32", mBlock, count, mBlock);
            }
            else
            {
                w.Op("mov.u32", mBlock, "%ctaid.x");
            }
            w.Op("ld.param.u32", mq, "[mq]");
            w.Op("ld.param.u32", mkv, "[mkv]");
            w.Op("ld.param.u32", hq, "[hq]");
            w.Op("ld.param.u32", group, "[group_size]");
            w.Op("div.u32", hk, h, group);

            m0 = w.S32("m0");
            var lastRow = w.S32("last_row");
            w.Op("mul.lo.s32", m0, mBlock, plan.BlockM);
            w.Op("add.s32", lastRow, m0, plan.BlockM);
            w.Op("min.s32", lastRow, lastRow, mq);
            w.Op("sub.s32", lastRow, lastRow, 1);

            kvBegin = w.S32("kv_begin");
            var kvEnd = w.S32("kv_end");
            LoadWindow();
            KeyRange(lastRow, kvEnd);
            nTiles = w.S32("n_tiles");
            if (plan.MaskMod)
            {
                BlockListRow(mBlock);
            }
            else
            {
                var span = w.Temp("s32");
                var empty = w.Temp("pred");
                w.Op("sub.s32", span, kvEnd, kvBegin);
                w.Op("add.s32", nTiles, span, plan.BlockN - 1);
                w.Op("div.s32", nTiles, nTiles, plan.BlockN);
                w.Op("setp.le.s32", empty, span, 0);
                w.OpIf(empty, false, "mov.s32", nTiles, 0);
            }

            w.Blank();
            w.Comment("Shared memory: Q, the K ring, the V ring, then the mbarriers (HopperPlan's layout).");
            InitBarriers(firstFullArrivals: 1);
            w.Blank();
        }

        /// <summary>The block list's entries for this CTA's query tile (a mask mod): its address and the count of key tiles to visit.</summary>
        private Reg blockRow;

        private void BlockListRow(Reg mBlock)
        {
            w.Comment("A mask mod: the key tiles come from the launch's block list (their count, then each tile's index and full bit).");
            blockRow = BlockListRowPointer(h, mBlock, "block_list_row");
            w.Op("ld.global.nc.s32", nTiles, $"[{blockRow}]");
            w.Op("mov.s32", kvBegin, 0);
        }

        /// <summary>Entry <paramref name="tile"/> of the CTA's block list: the tile's first key and whether it is fully visible.</summary>
        private (Reg N0, Reg Full) BlockListEntry(Reg tile, Reg n0, string prefix, Reg row)
        {
            var entry = w.S32(prefix + "_block_entry");
            var full = BlockListIndex(tile, row, entry, prefix);
            w.Op("mul.lo.s32", n0, entry, plan.BlockN);
            return (n0, full);
        }

        /// <summary>
        /// [kv_begin, kv_end): the keys any query row of this CTA may see (the ILGPU kernels' KvRange). Tiles outside are
        /// never loaded, so a causal CTA stops at its diagonal and a packed CTA at its segments.
        /// </summary>
        private void KeyRange(Reg lastRow, Reg kvEnd)
        {
            switch (plan.Mask)
            {
                case MaskKind.Causal:
                    w.Op("mov.s32", kvBegin, 0);
                    w.Op("add.s32", kvEnd, lastRow, 1);
                    w.Op("min.s32", kvEnd, kvEnd, mkv);
                    break;
                case MaskKind.CausalFromBottomRight:
                    w.Op("mov.s32", kvBegin, 0);
                    w.Op("add.s32", kvEnd, lastRow, 1);
                    w.Op("add.s32", kvEnd, kvEnd, mkv);
                    w.Op("sub.s32", kvEnd, kvEnd, mq);
                    w.Op("min.s32", kvEnd, kvEnd, mkv);
                    w.Op("max.s32", kvEnd, kvEnd, 0);
                    break;
                case MaskKind.CausalLocalFromBottomRight:
                {
                    // The last row's diagonal ends the range; the first row's window edge starts it (rows further down start
                    // later), rounded down to a whole tile: on the H200 the aligned tiles timed 0.252 ms against 0.267 unaligned
                    // (window 1024, B1 H16 M16384 K64; docs/PERF.md), though they load up to BlockN − 1 keys more.
                    w.Op("add.s32", kvEnd, lastRow, 1);
                    w.Op("add.s32", kvEnd, kvEnd, mkv);
                    w.Op("sub.s32", kvEnd, kvEnd, mq);
                    w.Op("min.s32", kvEnd, kvEnd, mkv);
                    w.Op("max.s32", kvEnd, kvEnd, 0);
                    w.Op("add.s32", kvBegin, m0, 1);
                    w.Op("add.s32", kvBegin, kvBegin, mkv);
                    w.Op("sub.s32", kvBegin, kvBegin, mq);
                    w.Op("sub.s32", kvBegin, kvBegin, window);
                    w.Op("max.s32", kvBegin, kvBegin, 0);
                    w.Op("and.b32", kvBegin, kvBegin, -plan.BlockN);
                    break;
                }
                case MaskKind.BlockDiagonalCausalFromBottomRight:
                case MaskKind.BlockDiagonalCausalLocal:
                case MaskKind.BlockDiagonalCausalLocalFromBottomRight:
                {
                    // The segments of the first and last rows; the last row's diagonal (the earlier segments' keys all come
                    // before it) and, with a window, the first row's window edge (the later segments' rows never precede it).
                    var (first, last, kvStart) = SegmentSpan("q_segment", "kv_start", m0, lastRow, kvBegin, kvEnd);
                    var qStart = LoadPointer("q_start");
                    var lastStart = w.S32("last_kv_start");
                    LoadInt(lastStart, kvStart, last, 0);
                    var diagonal = w.Temp("s32");
                    SegmentDiagonal(diagonal, last, qStart, kvStart);
                    w.Op("add.s32", diagonal, diagonal, lastRow);
                    w.Op("add.s32", diagonal, diagonal, 1);
                    w.Op("max.s32", diagonal, diagonal, lastStart);
                    w.Op("min.s32", kvEnd, kvEnd, diagonal);
                    if (plan.Local)
                    {
                        var edge = w.Temp("s32");
                        var next = w.Temp("s32");
                        SegmentDiagonal(edge, first, qStart, kvStart);
                        w.Op("add.s32", edge, edge, m0);
                        w.Op("add.s32", edge, edge, 1);
                        w.Op("sub.s32", edge, edge, window);
                        LoadInt(next, kvStart, first, 1);
                        w.Op("min.s32", edge, edge, next);
                        w.Op("max.s32", kvBegin, kvBegin, edge);
                    }
                    break;
                }
                case MaskKind.BlockDiagonal:
                case MaskKind.BlockDiagonalCausal:
                {
                    var (first, last, kvStart) = SegmentSpan("q_segment", "kv_start", m0, lastRow, kvBegin, kvEnd);
                    if (plan.Mask == MaskKind.BlockDiagonalCausal)
                    {
                        var qStart = LoadPointer("q_start");
                        var lastStart = w.S32("last_kv_start");
                        var lastQStart = w.S32("last_q_start");
                        LoadInt(lastStart, kvStart, last, 0);
                        LoadInt(lastQStart, qStart, last, 0);
                        var diagonal = w.Temp("s32");
                        w.Op("sub.s32", diagonal, lastRow, lastQStart);
                        w.Op("add.s32", diagonal, diagonal, lastStart);
                        w.Op("add.s32", diagonal, diagonal, 1);
                        w.Op("min.s32", kvEnd, kvEnd, diagonal);
                    }
                    break;
                }
                default:
                    w.Op("mov.s32", kvBegin, 0);
                    w.Op("mov.s32", kvEnd, mkv);
                    break;
            }
        }

        // ---------------------------------------------------------------- producer

        /// <summary>
        /// The producer warpgroup keeps <see cref="HopperPlan.ProducerRegisters"/> registers; its first thread loads Q once,
        /// then walks the key tiles: wait until consumers freed the stage, announce the bytes, issue the TMA copies.
        /// </summary>
        protected override void Producer()
        {
            w.Comment("Producer warpgroup: gives registers away (PTX ISA 9.7.19.5), one thread issues every TMA copy.");
            if (mode == HopperMode.Fast)
                w.Op("setmaxnreg.dec.sync.aligned.u32", plan.ProducerRegisters);
            var done = w.NewLabel("producer_done");
            var idle = w.Pred("producer_idle");
            w.Op("setp.ne.u32", idle, tid, 0);
            w.BranchIf(idle, false, done);

            var tmapQ = TensorMap("tmap_q");
            var tmapK = TensorMap("tmap_k");
            var tmapV = TensorMap("tmap_v");

            w.Comment(dq ? "Q and dO: BlockM rows each, one TMA copy per 64-column chunk." : "Q: BlockM rows, one TMA copy per 64-column chunk.");
            var barQ = BarrierAddress(BarrierQ());
            w.Op("mbarrier.arrive.expect_tx.shared::cta.b64", state, $"[{barQ}]", plan.QBytes * plan.ResidentTiles);
            for (int tileIndex = 0; tileIndex < plan.ResidentTiles; tileIndex++)
            {
                var map = tileIndex == 0 ? tmapQ : TensorMap("tmap_do");
                for (int chunk = 0; chunk < plan.Chunks; chunk++)
                {
                    var dst = w.Temp("u32");
                    w.Op("add.u32", dst, smem, tileIndex * plan.QBytes + chunk * plan.BlockM * 128);
                    TmaLoad(dst, map, chunk, h, m0, barQ);
                }
            }

            Reg? producerBlockRow = null;
            if (plan.MaskMod)
            {
                var mBlock = w.U32("p_m_block");
                w.Op("div.u32", mBlock, m0, plan.BlockM);
                producerBlockRow = BlockListRowPointer(h, mBlock, "p_block_list_row");
            }

            var loop = w.NewLabel("producer_loop");
            var end = w.NewLabel("producer_end");
            var tile = w.S32("p_tile");
            var stage = w.U32("p_stage");
            var phase = w.U32("p_phase");
            w.Op("mov.s32", tile, 0);
            w.Op("mov.u32", stage, 0);
            w.Op("mov.u32", phase, 0);
            w.Label(loop);
            var finished = w.Pred("p_finished");
            w.Op("setp.ge.s32", finished, tile, nTiles);
            w.BranchIf(finished, false, end);
            var n0 = w.S32("p_n0");
            if (plan.MaskMod)
                BlockListEntry(tile, n0, "p", producerBlockRow!.Value);
            else
                w.Op("mad.lo.s32", n0, tile, plan.BlockN, kvBegin);
            var freeParity = w.U32("p_free_parity");
            w.Op("xor.b32", freeParity, phase, 1);
            for (int operand = 0; operand < 2; operand++)
            {
                string name = operand == 0 ? "K" : "V";
                w.Comment($"{name} tile: wait until the consumers released this stage, then copy BlockN rows into it.");
                var empty = StageBarrier(operand == 0 ? 1 : 3, stage);
                MbarrierWait(empty, freeParity);
                var full = StageBarrier(operand == 0 ? 0 : 2, stage);
                w.Op("mbarrier.arrive.expect_tx.shared::cta.b64", state, $"[{full}]", plan.KvTileBytes);
                int offset = operand == 0 ? plan.KOffset : plan.VOffset;
                for (int chunk = 0; chunk < plan.Chunks; chunk++)
                {
                    var dst = w.Temp("u32");
                    w.Op("mad.lo.u32", dst, stage, plan.KvTileBytes, smem);
                    w.Op("add.u32", dst, dst, offset + chunk * plan.BlockN * 128);
                    TmaLoad(dst, operand == 0 ? tmapK : tmapV, chunk, hk, n0, full);
                }
            }
            Advance(tile, stage, phase);
            w.Branch(loop);
            w.Label(end);
            w.Label(done);
            EndRole();
            w.Blank();
        }

        // ---------------------------------------------------------------- consumers

        private readonly Reg[] row = new Reg[2], rowValid = new Reg[2];
        private readonly Reg[] rowMax = new Reg[2], rowSum = new Reg[2];
        private readonly Reg[] biasRow = new Reg[2], alibiOffset = new Reg[2];
        private Reg alibiSlope, biasStrideN2;

        protected override void Consumer()
        {
            w.Comment(dq
                ? "Consumer warpgroups: 64 query rows each (dQ); registers from the producer (PTX ISA 9.7.19.5)."
                : "Consumer warpgroups: 64 query rows each; registers from the producer (PTX ISA 9.7.19.5).");
            if (mode == HopperMode.Fast)
                w.Op("setmaxnreg.inc.sync.aligned.u32", plan.ConsumerRegisters);
            ConsumerSetup();

            s = w.Array("f32", "s", plan.BlockN / 2);
            o = w.Array("f32", dq ? "dq" : "o", plan.HeadDim / 2);
            p = w.Array("b32", "p", plan.BlockN / 4);
            if (dq)
                dp = w.Array("f32", "dp", plan.BlockN / 2);
            for (int i = 0; i < o.Count; i++)
                w.Op("mov.f32", o[i], Zero);

            w.Comment("Shared-memory matrix descriptors (PTX ISA 9.7.15.5.1): 128-byte swizzle, 8-row groups 1024 bytes apart.");
            var qAddress = w.U32("q_tile");
            w.Op("mad.lo.u32", qAddress, warpGroup, HopperPlan.WarpGroupRows * 128, smem);
            var descQ = Descriptor("desc_q", qAddress, leadingBytes: 16);
            var kBase = w.U32("k_ring");
            w.Op("add.u32", kBase, smem, plan.KOffset);
            var descK = Descriptor("desc_k", kBase, leadingBytes: 16);
            var vBase = w.U32("v_ring");
            w.Op("add.u32", vBase, smem, plan.VOffset);
            if (dq)
            {
                // dP = dO Vᵀ reads V K-major like K in S; dQ += dS K reads K MN-major, as the forward reads V.
                var doAddress = w.U32("do_tile");
                w.Op("add.u32", doAddress, qAddress, plan.QBytes);
                var descDo = Descriptor("desc_do", doAddress, leadingBytes: 16);
                var descVRows = Descriptor("desc_v", vBase, leadingBytes: 16);
                var descKColumns = Descriptor("desc_k_columns", kBase, leadingBytes: plan.BlockN * 128);
                BackwardQLoop(descQ, descDo, descK, descVRows, descKColumns, kBase);
                return;
            }
            // V is the B operand of O += P V with its N (head dim) contiguous: MN-major, chunks of 64 columns LBO apart.
            var descV = Descriptor("desc_v", vBase, leadingBytes: plan.BlockN * 128);

            var (accumulate, overwrite, zero) = ScalePredicates();

            w.Comment("Wait for Q.");
            MbarrierWait(BarrierAddress(BarrierQ()), zero);

            // The mainloop, per key tile: S = Q Kᵀ, the softmax, O += P V, each wgmma group awaited before its result is
            // read. The consumer warpgroups run it side by side, so one's softmax overlaps the other's wgmma. (Issuing the
            // next tile's S beside P V within a warpgroup, FlashAttention-3's intra-warpgroup overlap, measured slower here:
            // K128 forward 495 -> 385 TFLOP/s on the H200, K64 unchanged; see docs/PERF.md.)
            var (tile, stage, phase, n0, loop, end) = KeyTileLoop();
            IssueScores(descQ, descK, stage, phase, overwrite, accumulate);
            w.Op("wgmma.wait_group.sync.aligned", 0);
            w.Op("mbarrier.arrive.shared::cta.b64", state, $"[{StageBarrier(1, stage)}]");
            var correction = ScoresToProbabilities(n0);
            RescaleAndPack(correction);
            MbarrierWait(StageBarrier(2, stage), phase);
            var cleanTile = mode == HopperMode.Fast ? null : RewriteStagedTile("v", vBase, stage);
            IssueProbabilitiesTimesValues(descV, stage, accumulate, fence: true);
            w.Op("wgmma.wait_group.sync.aligned", 0);
            if (cleanTile is not null)
                w.Label(cleanTile);
            w.Op("mbarrier.arrive.shared::cta.b64", state, $"[{StageBarrier(3, stage)}]");
            Advance(tile, stage, phase);
            w.Branch(loop);

            w.Label(end);
            if (mode == HopperMode.Poison)
                PoisonRows(o, LoadPointer("o"), row, rowValid, mq, hq, h, quad2);
            else
                Epilogue();
            EndRole();
        }

        /// <summary>
        /// The head of the consumers' walk over the CTA's key tiles: counters, the exit test (to the epilogue), the tile's
        /// first key n0.
        /// </summary>
        private (Reg Tile, Reg Stage, Reg Phase, Reg N0, string Loop, string End) KeyTileLoop()
        {
            var loop = w.NewLabel("consumer_loop");
            var end = w.NewLabel("epilogue");
            var tile = w.S32("c_tile");
            var stage = w.U32("c_stage");
            var phase = w.U32("c_phase");
            var n0 = w.S32("c_n0");
            var finished = w.Pred("c_finished");
            w.Op("mov.s32", tile, 0);
            w.Op("mov.u32", stage, 0);
            w.Op("mov.u32", phase, 0);
            w.Label(loop);
            w.Op("setp.ge.s32", finished, tile, nTiles);
            w.BranchIf(finished, false, end);
            if (plan.MaskMod)
                fullTile = BlockListEntry(tile, n0, "c", blockRow).Full;
            else
                w.Op("mad.lo.s32", n0, tile, plan.BlockN, kvBegin);
            return (tile, stage, phase, n0, loop, end);
        }

        /// <summary>
        /// Waits for the stage's K tile and issues S = Q Kᵀ: HeadDim / 16 wgmma with both operands in shared memory
        /// (PTX ISA 9.7.15.5.2), committed as one group. The descriptors are computed first and the fence (PTX ISA
        /// 9.7.15.6.1: registers written since the last wgmma) sits right before the first wgmma, so ptxas need not add one.
        /// </summary>
        private void IssueScores(Reg descQ, Reg descK, Reg stage, Reg phase, Reg overwrite, Reg accumulate)
        {
            MbarrierWait(StageBarrier(0, stage), phase);
            var stageDescK = StageDescriptor(descK, stage);
            IssueSharedShared(s, plan.BlockN, descQ, plan.BlockM, stageDescK, plan.BlockN, overwrite, accumulate);
            w.Op("wgmma.commit_group.sync.aligned");
        }

        /// <summary>
        /// O += P V: BlockN / 16 wgmma, P from registers (A), V from shared memory as an MN-major B operand, committed as one
        /// group. The caller has waited for the V tile; <paramref name="fence"/> is false where another wgmma group was just
        /// issued behind the same fence.
        /// </summary>
        private void IssueProbabilitiesTimesValues(Reg descV, Reg stage, Reg accumulate, bool fence)
        {
            var stageDescV = StageDescriptor(descV, stage);
            IssueRegisterShared(o, p, stageDescV, plan.BlockN, accumulate, fence);
            w.Op("wgmma.commit_group.sync.aligned");
        }

        /// <summary>dS = P ∘ (dP − Delta) of the dQ pass: the scores' gradient, then dP's registers hold it.</summary>
        private RegArray dp = null!;
        private readonly Reg[] negLse = new Reg[2], delta = new Reg[2];

        /// <summary>
        /// The dQ pass's mainloop (Dao 2023, Algorithm 2, with dQ in a pass of its own: no atomics, the same bits every run),
        /// per key tile: S = Q Kᵀ and dP = dO Vᵀ issued back to back; P = exp2(c · s − log2(e) · Lse) from the forward's
        /// log-sum-exp once S lands; dS = P ∘ (dP − Delta) once dP lands (and the V stage is released); dQ += dS K with K
        /// read MN-major from the same stage, after which the K stage is released.
        /// </summary>
        private void BackwardQLoop(Reg descQ, Reg descDo, Reg descK, Reg descVRows, Reg descKColumns, Reg kRing)
        {
            var (accumulate, overwrite, zero) = ScalePredicates();
            w.Comment("Wait for Q and dO.");
            MbarrierWait(BarrierAddress(BarrierQ()), zero);

            var (tile, stage, phase, n0, loop, end) = KeyTileLoop();
            IssueScores(descQ, descK, stage, phase, overwrite, accumulate);
            MbarrierWait(StageBarrier(2, stage), phase);
            var stageDescV = StageDescriptor(descVRows, stage);
            IssueSharedShared(dp, plan.BlockN, descDo, plan.BlockM, stageDescV, plan.BlockN, overwrite, accumulate);
            w.Op("wgmma.commit_group.sync.aligned");
            w.Op("wgmma.wait_group.sync.aligned", 1);

            var columnBase = w.S32("column_base");
            w.Op("add.s32", columnBase, n0, quad2);
            if (plan.HasBias)
                AddBias(columnBase);
            else if (plan.ScoreMod)
                ScaleScores(s);
            if (plan.ScoreMod)
            {
                w.Op("wgmma.wait_group.sync.aligned", 0);
                w.Op("mbarrier.arrive.shared::cta.b64", state, $"[{StageBarrier(3, stage)}]");
                ApplyScoreModWithGradient(columnBase);
            }
            MaskBoundaryTile(KeyMaskComment, n0, columnBase, s, NegativeInfinity);
            if (plan.MaskMod)
                ApplyMaskMod(columnBase);
            w.Comment("P = exp2(c * s - log2(e) * Lse): the forward's probabilities from its log-sum-exp.");
            for (int i = 0; i < s.Count; i++)
            {
                w.Op("fma.rn.f32", s[i], s[i], cLog2, negLse[Element(i).RowHalf]);
                w.Op("ex2.approx.ftz.f32", s[i], s[i]);
            }
            if (plan.ScoreMod)
            {
                w.Comment("dS = P * dP', dP' = (dP - Delta) * d(score mod)/d(score) already in dP's registers.");
                for (int i = 0; i < dp.Count; i++)
                    w.Op("mul.f32", dp[i], dp[i], s[i]);
            }
            else
            {
                w.Op("wgmma.wait_group.sync.aligned", 0);
                w.Op("mbarrier.arrive.shared::cta.b64", state, $"[{StageBarrier(3, stage)}]");
                w.Comment("dS = P * (dP - Delta), in dP's registers.");
                for (int i = 0; i < dp.Count; i++)
                {
                    w.Op("sub.f32", dp[i], dp[i], delta[Element(i).RowHalf]);
                    w.Op("mul.f32", dp[i], dp[i], s[i]);
                }
            }
            // A NaN or Inf in dP where P is masked must not reach dQ (or dBias): masked entries are zeroed, not multiplied.
            MaskBoundaryTile(KeyMaskComment, n0, columnBase, dp, Zero);
            if (plan.MaskMod)
                ZeroWhereHidden(dp, s, fullTile);
            if (plan.BiasGradient)
                StoreBiasGradient(columnBase);
            if (mode == HopperMode.Sanitize)
            {
                // dQ += dS K must not multiply a zero of dS by a NaN or Inf of K (S has read this K tile already).
                w.Op("wgmma.wait_group.sync.aligned", 0);
                RewriteStagedTile("k", kRing, stage);
            }
            Pack(p, dp);
            var stageDescK = StageDescriptor(descKColumns, stage);
            IssueRegisterShared(o, p, stageDescK, plan.BlockN, accumulate, fence: true);
            w.Op("wgmma.commit_group.sync.aligned");
            w.Op("wgmma.wait_group.sync.aligned", 0);
            w.Op("mbarrier.arrive.shared::cta.b64", state, $"[{StageBarrier(1, stage)}]");
            Advance(tile, stage, phase);
            w.Branch(loop);

            w.Label(end);
            w.Comment("Epilogue: dQ = scale * dS K.");
            var pointer = LoadPointer("dq");
            StoreRows(o, pointer, row, rowValid, mq, hq, h, quad2, new[] { scale.Name, scale.Name }, mode == HopperMode.Fast ? nanSeen : null);
            EndRole();
        }

        /// <summary>
        /// dBias = dS for a tensor bias declared with a gradient: dense [B, Hq, Mq, Mkv], each thread its elements of the tile
        /// (2-byte stores; columns past Mkv and rows past Mq store nothing). Tiles a CTA never visits stay as the runtime
        /// zeroed them.
        /// </summary>
        private void StoreBiasGradient(Reg columnBase)
        {
            w.Comment("dBias = dS (dense [B, Hq, Mq, Mkv]).");
            var basePointer = LoadPointer("dbias");
            var limit = w.S32("dbias_limit");
            w.Op("sub.s32", limit, mkv, columnBase);
            var inRange = w.Pred("dbias_in_range");
            var half = w.Scalar("b16", "dbias_value");
            string convert = plan.Element == "bf16" ? "cvt.rn.bf16.f32" : "cvt.rn.f16.f32";
            for (int r = 0; r < 2; r++)
            {
                // ((b · Hq + h) · Mq + i) · Mkv + column_base, in bytes.
                var (index, wide) = RowIndex(r);
                w.Op("cvt.u64.s32", wide, mkv);
                w.Op("mul.lo.u64", index, index, wide);
                w.Op("cvt.u64.s32", wide, columnBase);
                w.Op("add.s64", index, index, wide);
                w.Op("shl.b64", index, index, 1);
                var rowPointer = w.Temp("u64");
                w.Op("add.s64", rowPointer, basePointer, index);
                for (int i = 0; i < dp.Count; i++)
                {
                    var (rowHalf, column) = Element(i);
                    if (rowHalf != r)
                        continue;
                    w.Op("setp.gt.and.s32", inRange, limit, column, rowValid[r]);
                    w.Op(convert, half, dp[i]);
                    w.OpIf(inRange, false, "st.global.b16", $"[{rowPointer}+{column * 2}]", half);
                }
            }
        }

        /// <summary>Bias, the boundary mask and the softmax's first half on the tile starting at key <paramref name="n0"/>.</summary>
        private Reg[] ScoresToProbabilities(Reg n0)
        {
            var columnBase = w.S32("column_base");
            w.Op("add.s32", columnBase, n0, quad2);
            if (plan.HasBias)
                AddBias(columnBase);
            else if (plan.ScoreMod)
                ScaleScores(s);
            if (plan.ScoreMod)
                ApplyScoreMod(columnBase);
            MaskBoundaryTile(KeyMaskComment, n0, columnBase, s, NegativeInfinity);
            if (plan.MaskMod)
                ApplyMaskMod(columnBase);
            return OnlineSoftmax();
        }

        /// <summary>Whether the consumers' current key tile is fully visible (its block-list bit): no mask mod to evaluate.</summary>
        private Reg fullTile;

        /// <summary>The mods' subexpressions of the CTA's head alone, computed once at the consumers' setup (<see cref="ModPtxWriter.EmitHeadInvariant"/>).</summary>
        private IReadOnlyDictionary<ModExpr, Reg>? modInvariant;

        /// <summary>What the mods see of a thread's row r: the batch (the segment when packed), the query's position, the key shift.</summary>
        private readonly Reg[] modBatch = new Reg[2], modQ = new Reg[2], modKvShift = new Reg[2];

        /// <summary>The mod's inputs for element i of S: its row's batch and position, the head, the key's position.</summary>
        private ModPtxInputs ModInputs(int i, Reg columnBase, Reg score)
        {
            var (half, column) = Element(i);
            var kv = w.Temp("s32");
            w.Op("add.s32", kv, columnBase, column);
            w.Op("sub.s32", kv, kv, modKvShift[half]);
            return new ModPtxInputs(score, modBatch[half], h, modQ[half], kv, "mod_args", modInvariant) { Distance = ScoreDistance(half, column, rowsAreKeys: false) };
        }

        /// <summary>
        /// The dQ pass's score mod: dP' = (dP − Delta) · d(ScoreMod)/d(score) at the unmodified score, into dP's registers,
        /// then score = ScoreMod(score, …) (dS = P ∘ dP' is then the gradient of the score before the mod).
        /// </summary>
        private void ApplyScoreModWithGradient(Reg columnBase)
        {
            w.Comment("The score mod " + mods!.ScoreMethod + " on every score of the tile, and dP' = (dP - Delta) * its derivative.");
            ModDistances(columnBase, modQ, modKvShift, rowsAreKeys: false);
            for (int i = 0; i < s.Count; i++)
            {
                var (result, derivative) = ModPtxWriter.EmitScoreAndGrad(w, mods, ModInputs(i, columnBase, s[i]));
                w.Op("sub.f32", dp[i], dp[i], delta[Element(i).RowHalf]);
                w.Op("mul.f32", dp[i], dp[i], derivative);
                w.Op("mov.f32", s[i], result);
            }
        }

        /// <summary>score = ScoreMod(score, batch, head, q, kv) for every element of the tile (docs/DSL.md).</summary>
        private void ApplyScoreMod(Reg columnBase)
        {
            w.Comment("The score mod " + mods!.ScoreMethod + " on every score of the tile.");
            ModDistances(columnBase, modQ, modKvShift, rowsAreKeys: false);
            for (int i = 0; i < s.Count; i++)
            {
                var result = ModPtxWriter.EmitScore(w, mods, ModInputs(i, columnBase, s[i]));
                w.Op("mov.f32", s[i], result);
            }
        }

        /// <summary>On a partial tile (its block-list bit clear), every score the mask mod hides becomes −inf.</summary>
        private void ApplyMaskMod(Reg columnBase)
        {
            w.Comment("The mask mod " + mods!.MaskMethod + ", on tiles the block list marks partial.");
            var skip = w.NewLabel("full_tile");
            w.BranchIf(fullTile, false, skip);
            for (int i = 0; i < s.Count; i++)
            {
                var keep = ModPtxWriter.EmitMask(w, mods, ModInputs(i, columnBase, s[i]));
                w.Op("selp.f32", s[i], s[i], NegativeInfinity, keep);
            }
            w.Label(skip);
        }

        /// <summary>
        /// A thread's two rows (r and r + 8 of its warp's 16) and, for each, the keys [lo, hi) it may see; the warp's
        /// tightest bounds decide which tiles need the mask at all.
        /// </summary>
        private void ConsumerSetup()
        {
            var (warp, laneRow) = ConsumerLanes();

            var first = w.S32("first_row");
            w.Op("mad.lo.s32", first, warpGroup, HopperPlan.WarpGroupRows, m0);
            w.Op("mad.lo.s32", first, warp, 16, first);
            w.Op("add.s32", first, first, laneRow);

            Reg qSegment = default, qStart = default, kvStart = default;
            if (plan.BlockDiagonal)
            {
                qSegment = LoadPointer("q_segment");
                qStart = LoadPointer("q_start");
                kvStart = LoadPointer("kv_start");
            }
            if (plan.TensorBias)
            {
                var strideN = w.Scalar("s64", "bias_sn");
                w.Op("ld.param.u64", strideN, "[bias_stride_n]");
                biasStrideN2 = w.Scalar("s64", "bias_sn2");
                w.Op("shl.b64", biasStrideN2, strideN, 1);
            }
            if (plan.Alibi)
            {
                var slopes = LoadPointer("alibi_slopes");
                alibiSlope = w.F32("alibi_slope");
                var address = w.Temp("u64");
                w.Op("mul.wide.u32", address, h, 4);
                w.Op("add.s64", address, address, slopes);
                w.Op("ld.global.nc.f32", alibiSlope, $"[{address}]");
            }

            for (int r = 0; r < 2; r++)
            {
                row[r] = w.S32("row" + r);
                rowValid[r] = w.Pred("row_valid" + r);
                lo[r] = w.S32("lo" + r);
                hi[r] = w.S32("hi" + r);
                rowMax[r] = w.F32("row_max" + r);
                rowSum[r] = w.F32("row_sum" + r);
                w.Op("add.s32", row[r], first, 8 * r);
                w.Op("setp.lt.s32", rowValid[r], row[r], mq);
                w.Op("mov.f32", rowMax[r], NegativeInfinity);
                w.Op("mov.f32", rowSum[r], Zero);
                VisibleKeys(r, qSegment, qStart, kvStart);
                if (plan.ScoreMod || plan.MaskMod)
                    (modBatch[r], modQ[r], modKvShift[r]) = ModPositions(r, row[r], rowValid[r], qSegment, qStart, kvStart, "mod_q", "mod_kv_shift");
                if (plan.TensorBias)
                    BiasRow(r);
                if (dq)
                    LseAndDelta(r);
            }

            WarpBounds("The warp's tightest key bounds: a tile inside [max lo, min hi) needs no mask.");
            if (plan.ScoreMod || plan.MaskMod)
                modInvariant = ModPtxWriter.EmitHeadInvariant(w, mods!, h, "mod_args");
            w.Blank();
        }

        /// <summary>Row r's visible keys [lo, hi) by the mask kind; a row past Mq sees every key (it is never stored).</summary>
        private void VisibleKeys(int r, Reg qSegment, Reg qStart, Reg kvStart)
        {
            var i = row[r];
            switch (plan.Mask)
            {
                case MaskKind.Causal:
                    w.Op("mov.s32", lo[r], 0);
                    w.Op("add.s32", hi[r], i, 1);
                    w.Op("min.s32", hi[r], hi[r], mkv);
                    break;
                case MaskKind.CausalFromBottomRight:
                    w.Op("mov.s32", lo[r], 0);
                    w.Op("add.s32", hi[r], i, 1);
                    w.Op("add.s32", hi[r], hi[r], mkv);
                    w.Op("sub.s32", hi[r], hi[r], mq);
                    w.Op("min.s32", hi[r], hi[r], mkv);
                    w.Op("max.s32", hi[r], hi[r], 0);
                    break;
                case MaskKind.CausalLocalFromBottomRight:
                {
                    // [diagonal + 1 − window, diagonal + 1), the diagonal at i + Mkv − Mq.
                    var end = w.S32("diagonal_end" + r);
                    w.Op("add.s32", end, i, 1);
                    w.Op("add.s32", end, end, mkv);
                    w.Op("sub.s32", end, end, mq);
                    w.Op("sub.s32", lo[r], end, window);
                    w.Op("max.s32", lo[r], lo[r], 0);
                    w.Op("min.s32", hi[r], end, mkv);
                    w.Op("max.s32", hi[r], hi[r], 0);
                    break;
                }
                case MaskKind.BlockDiagonal:
                case MaskKind.BlockDiagonalCausal:
                case MaskKind.BlockDiagonalCausalFromBottomRight:
                case MaskKind.BlockDiagonalCausalLocal:
                case MaskKind.BlockDiagonalCausalLocalFromBottomRight:
                {
                    var segment = SegmentRange(r, i, rowValid[r], qSegment, kvStart);
                    bool topLeft = plan.Mask == MaskKind.BlockDiagonalCausal;
                    if (topLeft || plan.Alibi)
                    {
                        var segmentQStart = w.S32("segment_q_start" + r);
                        LoadInt(segmentQStart, qStart, segment, 0);
                        if (topLeft)
                        {
                            var diagonal = w.Temp("s32");
                            w.Op("sub.s32", diagonal, i, segmentQStart);
                            w.Op("add.s32", diagonal, diagonal, lo[r]);
                            w.Op("add.s32", diagonal, diagonal, 1);
                            w.Op("min.s32", hi[r], hi[r], diagonal);
                        }
                        if (plan.Alibi)
                        {
                            // ALiBi within the segment: slope · ((j − KvStart[s]) − (i − QStart[s])).
                            alibiOffset[r] = w.S32("alibi_offset" + r);
                            w.Op("sub.s32", alibiOffset[r], segmentQStart, lo[r]);
                            w.Op("sub.s32", alibiOffset[r], alibiOffset[r], i);
                        }
                    }
                    if (plan.FromBottomRight || plan.Local)
                    {
                        // The diagonal from SegmentDiagonal (either corner), and the window's edge below it.
                        var end = w.S32("diagonal_end" + r);
                        SegmentDiagonal(end, segment, qStart, kvStart);
                        w.Op("add.s32", end, end, i);
                        w.Op("add.s32", end, end, 1);
                        w.Op("min.s32", hi[r], hi[r], end);
                        if (plan.Local)
                        {
                            var edge = w.Temp("s32");
                            w.Op("sub.s32", edge, end, window);
                            w.Op("max.s32", lo[r], lo[r], edge);
                        }
                    }
                    break;
                }
                default:
                    w.Op("mov.s32", lo[r], 0);
                    w.Op("mov.s32", hi[r], mkv);
                    break;
            }
            if (plan.Alibi && !plan.BlockDiagonal)
            {
                alibiOffset[r] = w.S32("alibi_offset" + r);
                w.Op("neg.s32", alibiOffset[r], i);
            }
            w.Op("selp.s32", lo[r], lo[r], 0, rowValid[r]);
            w.Op("selp.s32", hi[r], hi[r], 0x7fffffff, rowValid[r]);
        }

        /// <summary>
        /// (b · Hq + h) · Mq + i for row r (0 for a row past Mq), the index of its Lse, Delta and dBias rows, and a scratch
        /// register for the caller's next terms.
        /// </summary>
        private (Reg Index, Reg Wide) RowIndex(int r)
        {
            var index = w.Temp("u64");
            var wide = w.Temp("u64");
            var safeRow = w.Temp("s32");
            w.Op("selp.s32", safeRow, row[r], 0, rowValid[r]);
            w.Op("mul.wide.u32", index, b, hq);
            w.Op("cvt.u64.u32", wide, h);
            w.Op("add.s64", index, index, wide);
            w.Op("cvt.u64.s32", wide, mq);
            w.Op("mul.lo.u64", index, index, wide);
            w.Op("cvt.u64.s32", wide, safeRow);
            w.Op("add.s64", index, index, wide);
            return (index, wide);
        }

        /// <summary>
        /// The dQ pass's row constants: −log2(e) · Lse (−inf for a row past Mq or one that saw no key, so its P is 0; a NaN
        /// stays NaN) and Delta (0 past Mq), from [B, Hq, Mq] fp32.
        /// </summary>
        private void LseAndDelta(int r)
        {
            var (index, wide) = RowIndex(r);
            w.Op("shl.b64", index, index, 2);
            var lsePointer = w.Temp("u64");
            var deltaPointer = w.Temp("u64");
            w.Op("ld.param.u64", lsePointer, "[lse]");
            w.Op("ld.param.u64", deltaPointer, "[delta]");
            w.Op("add.s64", lsePointer, lsePointer, index);
            w.Op("add.s64", deltaPointer, deltaPointer, index);
            negLse[r] = w.F32("neg_lse" + r);
            delta[r] = w.F32("delta" + r);
            var empty = w.Temp("pred");
            w.Op("mov.f32", negLse[r], NegativeInfinity);
            w.Op("mov.f32", delta[r], Zero);
            w.OpIf(rowValid[r], false, "ld.global.nc.f32", negLse[r], $"[{lsePointer}]");
            w.OpIf(rowValid[r], false, "ld.global.nc.f32", delta[r], $"[{deltaPointer}]");
            w.Op("setp.eq.f32", empty, negLse[r], NegativeInfinity);
            w.Op("mul.f32", negLse[r], negLse[r], PtxWriter.Float(-Log2E));
            w.OpIf(empty, false, "mov.f32", negLse[r], NegativeInfinity);
        }

        /// <summary>Row r's bias pointer: bias + 2 · (b·sb + h·sh + i·sm) bytes (element strides; 0 broadcasts).</summary>
        private void BiasRow(int r)
        {
            var basePointer = w.U64("bias_base");
            w.Op("ld.param.u64", basePointer, "[bias]");
            var offset = w.Scalar("s64", "bias_offset" + r);
            var stride = w.Temp("s64");
            var index = w.Temp("s64");
            w.Op("ld.param.u64", stride, "[bias_stride_b]");
            w.Op("cvt.s64.u32", index, b);
            w.Op("mul.lo.s64", offset, index, stride);
            w.Op("ld.param.u64", stride, "[bias_stride_h]");
            w.Op("cvt.s64.u32", index, h);
            w.Op("mad.lo.s64", offset, index, stride, offset);
            w.Op("ld.param.u64", stride, "[bias_stride_m]");
            var safeRow = w.Temp("s32");
            w.Op("selp.s32", safeRow, row[r], 0, rowValid[r]);
            w.Op("cvt.s64.s32", index, safeRow);
            w.Op("mad.lo.s64", offset, index, stride, offset);
            biasRow[r] = w.U64("bias_row" + r);
            w.Op("shl.b64", offset, offset, 1);
            w.Op("add.s64", biasRow[r], basePointer, offset);
        }

        // ---------------------------------------------------------------- S → P


        /// <summary>score = scale · qk + bias in natural units (the softmax then works in log2 units with c = log2 e).</summary>
        private void AddBias(Reg columnBase)
        {
            if (plan.TensorBias)
            {
                w.Comment("Tensor bias: each thread reads its own elements (columns past Mkv read nothing; the mask drops them).");
                var limit = w.S32("bias_limit");
                w.Op("sub.s32", limit, mkv, columnBase);
                var tileRow = new Reg[2];
                var columnBase64 = w.Temp("s64");
                w.Op("cvt.s64.s32", columnBase64, columnBase);
                for (int r = 0; r < 2; r++)
                {
                    tileRow[r] = w.U64("bias_tile_row" + r);
                    w.Op("mad.lo.s64", tileRow[r], columnBase64, biasStrideN2, biasRow[r]);
                }
                AddTensorBias(s, limit, rowValid, biasStrideN2, tileRow);
            }
            else
            {
                w.Comment("ALiBi in the kernel: score = scale · qk + slope · (j − i) (within the segment for packed rows).");
                var rowBias = new Reg[2];
                for (int r = 0; r < 2; r++)
                {
                    var distance = w.Temp("s32");
                    var distanceF = w.Temp("f32");
                    rowBias[r] = w.F32("alibi_row" + r);
                    w.Op("add.s32", distance, columnBase, alibiOffset[r]);
                    w.Op("cvt.rn.f32.s32", distanceF, distance);
                    w.Op("mul.f32", rowBias[r], distanceF, alibiSlope);
                }
                var value = w.F32("alibi_value");
                for (int i = 0; i < s.Count; i++)
                {
                    var (half, column) = Element(i);
                    w.Op("fma.rn.f32", value, alibiSlope, PtxWriter.Float(column), rowBias[half]);
                    w.Op("fma.rn.f32", s[i], s[i], scale, value);
                }
            }
        }


        /// <summary>
        /// The online softmax (Dao 2023, Algorithm 1, lines 9–10) in log2 units, first half: the row maximum over the quad
        /// that shares a row, P = exp2(c · s − c · m) with one fma each (in place, in the S registers), the running sum,
        /// and the factor exp2(c · (m_old − m_new)) that O still needs. A row that has seen no key yet keeps m = −inf and
        /// subtracts 0 instead (no inf − inf).
        /// </summary>
        private Reg[] OnlineSoftmax()
        {
            w.Comment("Online softmax in registers, exp2 with the scale folded into one fma.");
            var corrections = new Reg[2];
            for (int r = 0; r < 2; r++)
            {
                var elements = Enumerable.Range(0, s.Count).Where(i => Element(i).RowHalf == r).ToList();
                var tileMax = Reduce("max.f32", "tile_max" + r, s, elements);
                foreach (int distance in new[] { 1, 2 })
                {
                    var other = w.Temp("f32");
                    w.Op("shfl.sync.bfly.b32", other, tileMax, distance, "0x1f", "0xffffffff");
                    w.Op("max.f32", tileMax, tileMax, other);
                }
                var newMax = w.F32("new_max" + r);
                var negScaledMax = w.F32("neg_scaled_max" + r);
                var noKey = w.Pred("no_key" + r);
                var correction = w.F32("correction" + r);
                w.Op("max.f32", newMax, rowMax[r], tileMax);
                w.Op("mul.f32", negScaledMax, newMax, cLog2);
                w.Op("neg.f32", negScaledMax, negScaledMax);
                w.Op("setp.eq.f32", noKey, newMax, NegativeInfinity);
                w.Op("selp.f32", negScaledMax, Zero, negScaledMax, noKey);
                w.Op("fma.rn.f32", correction, rowMax[r], cLog2, negScaledMax);
                w.Op("ex2.approx.ftz.f32", correction, correction);
                w.Op("mov.f32", rowMax[r], newMax);
                foreach (int i in elements)
                {
                    w.Op("fma.rn.f32", s[i], s[i], cLog2, negScaledMax);
                    w.Op("ex2.approx.ftz.f32", s[i], s[i]);
                }
                var tileSum = Reduce("add.f32", "tile_sum" + r, s, elements);
                w.Op("fma.rn.f32", rowSum[r], rowSum[r], correction, tileSum);
                corrections[r] = correction;
            }
            return corrections;
        }

        /// <summary>
        /// The softmax's second half, once the previous O += P V has landed: O rescaled by each row's factor, and P packed
        /// as wgmma A fragments (k-step kk packs accumulator tiles 2kk and 2kk + 1, the m16n8k16 A layout).
        /// </summary>
        private void RescaleAndPack(Reg[] corrections)
        {
            if (mode == HopperMode.Poison)
            {
                // The indicator product counts; it is never rescaled (a factor could round a count to 0).
                PackIndicators(p, s);
                return;
            }
            for (int i = 0; i < o.Count; i++)
                w.Op("mul.f32", o[i], o[i], corrections[Element(i).RowHalf]);
            Pack(p, s);
        }

        // ---------------------------------------------------------------- epilogue

        /// <summary>
        /// O = acc / rowsum and Lse = ln 2 · (c · m + log2 rowsum) (Algorithm 1, lines 12–13); a row that saw no key gets
        /// O = 0 and Lse = −inf, a row whose sum is NaN gets NaN in both (max.f32 drops a NaN score, but exp2 of it does not). Each thread stores its 4-byte pairs of O, the quad's first thread the Lse of its rows.
        /// </summary>
        private void Epilogue()
        {
            w.Comment("Epilogue: normalize, store O and the log-sum-exp.");
            var pO = w.U64("o_pointer");
            var pLse = w.U64("lse_pointer");
            w.Op("ld.param.u64", pO, "[o]");
            w.Op("ld.param.u64", pLse, "[lse]");
            var isQuadLeader = w.Pred("quad_leader");
            w.Op("setp.eq.s32", isQuadLeader, quad2, 0);
            string pack = plan.Element == "bf16" ? "cvt.rn.bf16x2.f32" : "cvt.rn.f16x2.f32";
            Reg? seen = mode == HopperMode.Fast ? nanSeen : null;
            for (int r = 0; r < 2; r++)
            {
                foreach (int distance in new[] { 1, 2 })
                {
                    var other = w.Temp("f32");
                    w.Op("shfl.sync.bfly.b32", other, rowSum[r], distance, "0x1f", "0xffffffff");
                    w.Op("add.f32", rowSum[r], rowSum[r], other);
                }
                var positive = w.Pred("positive" + r);
                var inverse = w.F32("inverse" + r);
                w.Op("setp.gt.f32", positive, rowSum[r], Zero);
                w.Op("rcp.rn.f32", inverse, rowSum[r]);
                w.Op("selp.f32", inverse, inverse, Zero, positive);

                // O row pointer: o + 2 · (((b · Mq + i) · Hq + h) · HeadDim + 2 · (lane mod 4)).
                var index = w.Temp("u64");
                var wide = w.Temp("u64");
                var safeRow = w.Temp("s32");
                w.Op("selp.s32", safeRow, row[r], 0, rowValid[r]);
                w.Op("mul.wide.u32", index, b, mq);
                w.Op("cvt.u64.s32", wide, safeRow);
                w.Op("add.s64", index, index, wide);
                w.Op("cvt.u64.u32", wide, hq);
                w.Op("mul.lo.u64", index, index, wide);
                w.Op("cvt.u64.u32", wide, h);
                w.Op("add.s64", index, index, wide);
                w.Op("mul.lo.u64", index, index, plan.HeadDim * 2);
                w.Op("cvt.u64.s32", wide, quad2);
                w.Op("shl.b64", wide, wide, 1);
                w.Op("add.s64", index, index, wide);
                var rowPointer = w.U64("o_row" + r);
                w.Op("add.s64", rowPointer, pO, index);
                for (int i = 0; i < o.Count; i += 2)
                {
                    if (Element(i).RowHalf != r)
                        continue;
                    var packed = w.Temp("b32");
                    var lowValue = w.Temp("f32");
                    var highValue = w.Temp("f32");
                    w.Op("mul.f32", lowValue, o[i], inverse);
                    w.Op("mul.f32", highValue, o[i + 1], inverse);
                    if (seen is { } noted)
                        NoteNaN(noted, lowValue, highValue, rowValid[r]);
                    w.Op(pack, packed, highValue, lowValue);
                    w.OpIf(rowValid[r], false, "st.global.b32", $"[{rowPointer}+{Element(i).Column * 2}]", packed);
                }

                var lse = w.F32("lse" + r);
                var log2Sum = w.Temp("f32");
                w.Op("lg2.approx.f32", log2Sum, rowSum[r]);
                w.Op("fma.rn.f32", lse, rowMax[r], cLog2, log2Sum);
                w.Op("mul.f32", lse, lse, PtxWriter.Float(Ln2));
                w.Op("selp.f32", lse, lse, NegativeInfinity, positive);
                // A NaN row (a NaN in its q, or in a k or bias entry it sees) keeps NaN as its log-sum-exp, like its O.
                var notANumber = w.Pred("nan_row" + r);
                w.Op("setp.nan.f32", notANumber, rowSum[r], rowSum[r]);
                w.Op("selp.f32", lse, rowSum[r], lse, notANumber);
                var store = w.Pred("store_lse" + r);
                w.Op("and.pred", store, isQuadLeader, rowValid[r]);
                var lseIndex = w.Temp("u64");
                var lseWide = w.Temp("u64");
                w.Op("mul.wide.u32", lseIndex, b, hq);
                w.Op("cvt.u64.u32", lseWide, h);
                w.Op("add.s64", lseIndex, lseIndex, lseWide);
                w.Op("cvt.u64.s32", lseWide, mq);
                w.Op("mul.lo.u64", lseIndex, lseIndex, lseWide);
                w.Op("cvt.u64.s32", lseWide, safeRow);
                w.Op("add.s64", lseIndex, lseIndex, lseWide);
                w.Op("shl.b64", lseIndex, lseIndex, 2);
                w.Op("add.s64", lseIndex, lseIndex, pLse);
                w.OpIf(store, false, "st.global.f32", $"[{lseIndex}]", lse);
            }
        }
    }
}
