using System.Collections.Generic;
using XFormers.Dsl;
using XFormers.Generators.Models;
using XFormers.Generators.Mods;

namespace XFormers.Generators.Hopper
{
    /// <summary>
    /// The backward of one variant as an sm_90a PTX module with two entry points, deterministic by construction (every
    /// gradient element is summed by one thread in a fixed order; no atomics):
    /// <list type="bullet">
    /// <item><see cref="KeysAndValuesEntryPoint"/>: a CTA owns 128 key rows of one key/value head (64 per consumer
    /// warpgroup, K and V loaded once) and streams the 64-row Q and dO tiles of every query head of its group that can see
    /// them through the TMA ring. Per tile: Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (wgmma, both operands in shared memory), Pᵀ from the
    /// forward's log-sum-exp, dSᵀ = Pᵀ ∘ (dPᵀ − Delta), then dV += Pᵀ dO and dK += dSᵀ Q with Pᵀ and dSᵀ from registers and
    /// dO, Q read MN-major from the same stages. The producer's second warp stages −log2(e) · Lse and Delta of each tile's
    /// rows in shared memory beside it.</item>
    /// <item><see cref="QueriesEntryPoint"/>: dQ (and dBias) in the forward's orientation, written by
    /// <see cref="HopperForwardEmitter"/>.</item>
    /// </list>
    /// Grids: (ceil(Mkv / 128), Hkv, B) and (ceil(Mq / 128), Hq, B). The Delta pass (rowsum(dO ∘ O)) runs before both.
    /// </summary>
    internal sealed class HopperBackwardEmitter : HopperEmitter
    {
        public const string KeysAndValuesEntryPoint = "xformers_backward_kv_sm90a";
        public const string QueriesEntryPoint = "xformers_backward_q_sm90a";
        /// <summary>The dV pass where dK and dV take a pass each (HeadDim 256); the first entry then computes dK alone.</summary>
        public const string ValuesEntryPoint = "xformers_backward_v_sm90a";

        private const string QueryMaskComment = "Mask only where the tile cuts a key row's viewers (rows past Mq included).";

        /// <summary>Both entry points' parameters, in the order HopperLauncher passes them.</summary>
        public static readonly string[] Parameters =
        {
            ".param .align 64 .b8 tmap_q[128]",
            ".param .align 64 .b8 tmap_do[128]",
            ".param .align 64 .b8 tmap_k[128]",
            ".param .align 64 .b8 tmap_v[128]",
            ".param .u64 lse",
            ".param .u64 delta",
            ".param .u64 dq",
            ".param .u64 dk",
            ".param .u64 dv",
            ".param .u64 dbias",
            ".param .u64 bias",
            ".param .u64 bias_stride_b",
            ".param .u64 bias_stride_h",
            ".param .u64 bias_stride_m",
            ".param .u64 bias_stride_n",
            ".param .u64 alibi_slopes",
            ".param .u64 q_segment",
            ".param .u64 kv_segment",
            ".param .u64 q_start",
            ".param .u64 kv_start",
            ".param .u32 mq",
            ".param .u32 mkv",
            ".param .u32 hq",
            ".param .u32 group_size",
            ".param .f32 scale",
            ".param .f32 scale_log2",
        };

        private HopperBackwardEmitter(HopperPlan plan, ModsModel? mods)
            : base(plan, mods)
        {
        }

        /// <summary>The module: the dK/dV entry point, then the dQ one.</summary>
        public static string Emit(HopperPlan keysAndValues, HopperPlan? values, HopperPlan queries, string summary, ModsModel? mods = null)
        {
            var emitter = new HopperBackwardEmitter(keysAndValues, mods);
            emitter.Kernel();
            string tiles = Tiles(keysAndValues).Replace("// Tiles:", values is null ? "// dK/dV tiles (BlockM keys, BlockN queries):" : "// dK tiles (BlockM keys, BlockN queries):") +
                           (values is null ? "" : Tiles(values).Replace("// Tiles:", "// dV tiles (BlockM keys, BlockN queries):")) +
                           Tiles(queries).Replace("// Tiles:", "// dQ tiles:");
            string text = Header("the sm_90a backward", summary, tiles) + emitter.Entry(KeysAndValuesEntryPoint, WithWindow(keysAndValues, WithMods(keysAndValues, Parameters))) + "\n";
            if (values is not null)
            {
                var valuesEmitter = new HopperBackwardEmitter(values, mods);
                valuesEmitter.Kernel();
                text += valuesEmitter.Entry(ValuesEntryPoint, WithWindow(values, WithMods(values, Parameters))) + "\n";
            }
            return text + HopperForwardEmitter.EmitBackwardQ(queries, mods);
        }

        /// <summary>Passes over the tile: Q (and dO) sanitized; where the pass computes dV, then dV's poisoning.</summary>
        protected override HopperMode[] Modes => Values
            ? new[] { HopperMode.Fast, HopperMode.Sanitize, HopperMode.Poison }
            : new[] { HopperMode.Fast, HopperMode.Sanitize };

        /// <summary>dPᵀ, dSᵀ and dK: all but the dV pass.</summary>
        private bool Keys => plan.Gradients != KvGradients.Values;

        /// <summary>dV: all but the dK pass.</summary>
        private bool Values => plan.Gradients != KvGradients.Keys;

        // Registers every role reads.
        private Reg hk, mq, mkv, hq, group, nBlock, n0, qBegin, mTiles, total;

        // ---------------------------------------------------------------- setup (every thread)

        protected override void Setup()
        {
            w.Comment("Block coordinates, sizes, and the query rows that can see this CTA's keys (every role computes the same).");
            tid = w.U32("thread");
            hk = w.U32("hk");
            b = w.U32("b");
            mq = w.S32("mq");
            mkv = w.S32("mkv");
            hq = w.U32("hq");
            group = w.U32("group");
            nBlock = w.U32("n_block");
            w.Op("mov.u32", tid, "%tid.x");
            w.Op("mov.u32", nBlock, "%ctaid.x");
            w.Op("mov.u32", hk, "%ctaid.y");
            w.Op("mov.u32", b, "%ctaid.z");
            w.Op("ld.param.u32", mq, "[mq]");
            w.Op("ld.param.u32", mkv, "[mkv]");
            w.Op("ld.param.u32", hq, "[hq]");
            w.Op("ld.param.u32", group, "[group_size]");

            n0 = w.S32("n0");
            var lastKey = w.S32("last_key");
            w.Op("mul.lo.s32", n0, nBlock, plan.BlockM);
            w.Op("add.s32", lastKey, n0, plan.BlockM);
            w.Op("min.s32", lastKey, lastKey, mkv);
            w.Op("sub.s32", lastKey, lastKey, 1);

            qBegin = w.S32("q_begin");
            var qEnd = w.S32("q_end");
            LoadWindow();
            QueryRange(lastKey, qEnd);
            w.Op("max.s32", qBegin, qBegin, 0);
            w.Op("min.s32", qEnd, qEnd, mq);
            mTiles = w.S32("m_tiles");
            total = w.S32("total_tiles");
            var span = w.Temp("s32");
            var empty = w.Temp("pred");
            w.Op("sub.s32", span, qEnd, qBegin);
            w.Op("add.s32", mTiles, span, plan.BlockN - 1);
            w.Op("div.s32", mTiles, mTiles, plan.BlockN);
            w.Op("setp.le.s32", empty, span, 0);
            w.OpIf(empty, false, "mov.s32", mTiles, 0);
            w.Op("mul.lo.s32", total, mTiles, group);
            if (plan.MaskMod)
            {
                w.Comment("A mask mod: the (query head, query tile) pairs come from the launch's block list, which the mask and the");
                w.Comment("built-in mask decided; a listed index is g · m_tiles + query tile, with m_tiles = ceil(Mq / BlockN).");
                w.Op("mov.s32", qBegin, 0);
                w.Op("add.s32", mTiles, mq, plan.BlockN - 1);
                w.Op("div.s32", mTiles, mTiles, plan.BlockN);
                var row = BlockListRowPointer(hk, nBlock, "block_list_row");
                w.Op("ld.global.nc.s32", total, $"[{row}]");
            }

            w.Blank();
            w.Comment("Shared memory: K, V, the Q ring, the dO ring, the row vectors, then the mbarriers (HopperPlan's layout).");
            // The Q stage completes with its TMA bytes and the 32 arrivals of the warp that writes the row vectors.
            InitBarriers(firstFullArrivals: 1 + 32);
            w.Blank();
        }

        /// <summary>
        /// [q_begin, q_end): the query rows that may see any key of [n0, last_key] (a superset: the per-element mask is
        /// exact). Causal CTAs start at their diagonal, packed ones at their segments.
        /// </summary>
        private void QueryRange(Reg lastKey, Reg qEnd)
        {
            switch (plan.Mask)
            {
                case MaskKind.Causal:
                    w.Op("mov.s32", qBegin, n0);
                    w.Op("mov.s32", qEnd, mq);
                    break;
                case MaskKind.CausalFromBottomRight:
                    // Row i sees keys j < i + 1 + Mkv − Mq.
                    w.Op("sub.s32", qBegin, n0, mkv);
                    w.Op("add.s32", qBegin, qBegin, mq);
                    w.Op("mov.s32", qEnd, mq);
                    break;
                case MaskKind.CausalLocalFromBottomRight:
                    // Row i sees keys i + Mkv − Mq − window < j <= i + Mkv − Mq: the last key's last viewer ends the range.
                    w.Op("sub.s32", qBegin, n0, mkv);
                    w.Op("add.s32", qBegin, qBegin, mq);
                    w.Op("sub.s32", qEnd, lastKey, mkv);
                    w.Op("add.s32", qEnd, qEnd, mq);
                    w.Op("add.s32", qEnd, qEnd, window);
                    w.Op("max.s32", qEnd, qEnd, 0);
                    break;
                case MaskKind.BlockDiagonalCausalFromBottomRight:
                case MaskKind.BlockDiagonalCausalLocal:
                case MaskKind.BlockDiagonalCausalLocalFromBottomRight:
                {
                    // The first key's first viewer (a later segment's keys are seen from its first row on) and, with a window,
                    // the last key's last viewer (the earlier segments' rows all come before it).
                    var (first, last, qStart) = SegmentSpan("kv_segment", "q_start", n0, lastKey, qBegin, qEnd);
                    var kvStart = LoadPointer("kv_start");
                    var viewer = w.Temp("s32");
                    var bound = w.Temp("s32");
                    SegmentDiagonal(viewer, first, qStart, kvStart);
                    w.Op("sub.s32", viewer, n0, viewer);
                    w.Op("max.s32", qBegin, qBegin, viewer);
                    LoadInt(bound, qStart, first, 1);
                    w.Op("min.s32", qBegin, qBegin, bound);
                    if (plan.Local)
                    {
                        SegmentDiagonal(viewer, last, qStart, kvStart);
                        w.Op("sub.s32", viewer, lastKey, viewer);
                        w.Op("add.s32", viewer, viewer, window);
                        w.Op("min.s32", qEnd, qEnd, viewer);
                        LoadInt(bound, qStart, last, 0);
                        w.Op("max.s32", qEnd, qEnd, bound);
                    }
                    break;
                }
                case MaskKind.BlockDiagonal:
                case MaskKind.BlockDiagonalCausal:
                {
                    var (first, last, qStart) = SegmentSpan("kv_segment", "q_start", n0, lastKey, qBegin, qEnd);
                    if (plan.Mask == MaskKind.BlockDiagonalCausal)
                    {
                        // Key j of segment s is seen from row QStart[s] + (j − KvStart[s]); a later segment's keys from
                        // its first row.
                        var kvStart = LoadPointer("kv_start");
                        var firstKvStart = w.S32("first_kv_start");
                        var nextQStart = w.S32("next_q_start");
                        var several = w.Pred("several_segments");
                        LoadInt(firstKvStart, kvStart, first, 0);
                        LoadInt(nextQStart, qStart, first, 1);
                        w.Op("sub.s32", firstKvStart, n0, firstKvStart);
                        w.Op("add.s32", qBegin, qBegin, firstKvStart);
                        w.Op("setp.gt.s32", several, last, first);
                        var bounded = w.Temp("s32");
                        w.Op("min.s32", bounded, qBegin, nextQStart);
                        w.OpIf(several, false, "mov.s32", qBegin, bounded);
                    }
                    break;
                }
                default:
                    w.Op("mov.s32", qBegin, 0);
                    w.Op("mov.s32", qEnd, mq);
                    break;
            }
        }

        /// <summary>
        /// Tile t of the CTA's walk → its query head h = hk · G + t / m_tiles and first row m0 (with a mask mod, t is the
        /// index the block list's entry t names).
        /// </summary>
        private void TileCoordinates(Reg tile, Reg h, Reg m0)
        {
            var g = w.Temp("s32");
            var within = w.Temp("s32");
            w.Op("div.s32", g, tile, mTiles);
            w.Op("mul.lo.s32", within, g, mTiles);
            w.Op("sub.s32", within, tile, within);
            w.Op("mad.lo.s32", m0, within, plan.BlockN, qBegin);
            w.Op("mad.lo.s32", h, hk, group, g);
        }

        /// <summary>A mask mod's walk: the current role's block-list row, and (consumers) whether the current tile is fully visible.</summary>
        private Reg blockRow, fullTile;

        // ---------------------------------------------------------------- producer

        /// <summary>
        /// The producer warpgroup keeps <see cref="HopperPlan.ProducerRegisters"/> registers. Its first thread loads K and V
        /// once, then walks the tiles: Q into the first ring, dO into the second, each stage once the consumers freed it.
        /// Its second warp writes each stage's row vectors (−log2(e) · Lse, Delta) and arrives on the Q stage's barrier.
        /// </summary>
        protected override void Producer()
        {
            w.Comment("Producer warpgroup: gives registers away (PTX ISA 9.7.19.5).");
            if (mode == HopperMode.Fast)
                w.Op("setmaxnreg.dec.sync.aligned.u32", plan.ProducerRegisters);
            var done = w.NewLabel("producer_done");
            var vectors = w.NewLabel("row_vectors");
            var warp = w.U32("producer_warp");
            var isVectorWarp = w.Pred("vector_warp");
            var idle = w.Pred("producer_idle");
            w.Op("shr.u32", warp, tid, 5);
            w.Op("setp.eq.u32", isVectorWarp, warp, 1);
            w.BranchIf(isVectorWarp, false, vectors);
            w.Op("setp.ne.u32", idle, tid, 0);
            w.BranchIf(idle, false, done);

            var tmapQ = TensorMap("tmap_q");
            var tmapDo = TensorMap("tmap_do");
            var tmapK = TensorMap("tmap_k");
            var tmapV = TensorMap("tmap_v");

            w.Comment("K and V: BlockM rows each, one TMA copy per 64-column chunk.");
            var barQ = BarrierAddress(BarrierQ());
            w.Op("mbarrier.arrive.expect_tx.shared::cta.b64", state, $"[{barQ}]", plan.QBytes * 2);
            for (int tileIndex = 0; tileIndex < 2; tileIndex++)
            {
                for (int chunk = 0; chunk < plan.Chunks; chunk++)
                {
                    var dst = w.Temp("u32");
                    w.Op("add.u32", dst, smem, tileIndex * plan.QBytes + chunk * plan.BlockM * 128);
                    TmaLoad(dst, tileIndex == 0 ? tmapK : tmapV, chunk, hk, n0, barQ);
                }
            }

            var (tile, stage, phase, freeParity, h, m0, loop, end) = RingLoop("p");
            for (int operand = 0; operand < 2; operand++)
            {
                w.Comment($"{(operand == 0 ? "Q" : "dO")} tile: wait until the consumers released this stage, then copy BlockN rows into it.");
                MbarrierWait(StageBarrier(operand == 0 ? 1 : 3, stage), freeParity);
                var full = StageBarrier(operand == 0 ? 0 : 2, stage);
                w.Op("mbarrier.arrive.expect_tx.shared::cta.b64", state, $"[{full}]", plan.KvTileBytes);
                int offset = operand == 0 ? plan.KOffset : plan.VOffset;
                for (int chunk = 0; chunk < plan.Chunks; chunk++)
                {
                    var dst = w.Temp("u32");
                    w.Op("mad.lo.u32", dst, stage, plan.KvTileBytes, smem);
                    w.Op("add.u32", dst, dst, offset + chunk * plan.BlockN * 128);
                    TmaLoad(dst, operand == 0 ? tmapQ : tmapDo, chunk, h, m0, full);
                }
            }
            Advance(tile, stage, phase);
            w.Branch(loop);
            w.Label(end);
            w.Branch(done);

            RowVectors(vectors);
            w.Label(done);
            EndRole();
            w.Blank();
        }

        /// <summary>The head of a walk over the CTA's tiles (producer or consumer): counters, the exit test, h and m0.</summary>
        private (Reg Tile, Reg Stage, Reg Phase, Reg FreeParity, Reg H, Reg M0, string Loop, string End) RingLoop(string prefix)
        {
            // Each role computes its block-list row after its setmaxnreg rather than keep a 64-bit value across it.
            if (plan.MaskMod)
                blockRow = BlockListRowPointer(hk, nBlock, prefix + "_block_row");
            var loop = w.NewLabel(prefix + "_loop");
            var end = w.NewLabel(prefix + "_end");
            var tile = w.S32(prefix + "_tile");
            var stage = w.U32(prefix + "_stage");
            var phase = w.U32(prefix + "_phase");
            w.Op("mov.s32", tile, 0);
            w.Op("mov.u32", stage, 0);
            w.Op("mov.u32", phase, 0);
            w.Label(loop);
            var finished = w.Pred(prefix + "_finished");
            w.Op("setp.ge.s32", finished, tile, total);
            w.BranchIf(finished, false, end);
            var h = w.U32(prefix + "_h");
            var m0 = w.S32(prefix + "_m0");
            if (plan.MaskMod)
            {
                var index = w.S32(prefix + "_block_entry");
                var full = BlockListIndex(tile, blockRow, index, prefix);
                if (prefix == "c")
                    fullTile = full;
                TileCoordinates(index, h, m0);
            }
            else
            {
                TileCoordinates(tile, h, m0);
            }
            var freeParity = w.U32(prefix + "_free_parity");
            w.Op("xor.b32", freeParity, phase, 1);
            return (tile, stage, phase, freeParity, h, m0, loop, end);
        }

        /// <summary>
        /// The producer's second warp: for each tile, once its Q stage is free, −log2(e) · Lse and Delta of the tile's rows
        /// into the stage's vectors (−inf and 0 past Mq; −inf for a row that saw no key, whose P must be 0), then one arrival
        /// each on the Q stage's barrier (release: the consumers' wait on it sees the stores).
        /// </summary>
        private void RowVectors(string label)
        {
            w.Label(label);
            var lane = w.U32("vector_lane");
            w.Op("and.b32", lane, tid, 31);
            var lsePointer = LoadPointer("lse");
            var deltaPointer = LoadPointer("delta");
            var (tile, stage, phase, freeParity, h, m0, loop, end) = RingLoop("v");
            MbarrierWait(StageBarrier(1, stage), freeParity);
            var slot = w.U32("vector_slot");
            w.Op("mad.lo.u32", slot, stage, plan.StageVectorBytes, smem);
            w.Op("add.u32", slot, slot, plan.VectorOffset);
            var headRow = w.Scalar("u64", "vector_head_row");
            var wide = w.Temp("u64");
            w.Op("mul.wide.u32", headRow, b, hq);
            w.Op("cvt.u64.u32", wide, h);
            w.Op("add.s64", headRow, headRow, wide);
            w.Op("cvt.u64.s32", wide, mq);
            w.Op("mul.lo.u64", headRow, headRow, wide);
            for (int k = 0; k < plan.BlockN / 32; k++)
            {
                var column = w.Temp("s32");
                var i = w.Temp("s32");
                var valid = w.Temp("pred");
                var offset = w.Temp("u64");
                var lse = w.Temp("f32");
                var delta = w.Temp("f32");
                var noKey = w.Temp("pred");
                w.Op("add.s32", column, lane, 32 * k);
                w.Op("add.s32", i, m0, column);
                w.Op("setp.lt.s32", valid, i, mq);
                w.Op("cvt.u64.s32", offset, i);
                w.Op("add.s64", offset, offset, headRow);
                w.Op("shl.b64", offset, offset, 2);
                var lseAddress = w.Temp("u64");
                var deltaAddress = w.Temp("u64");
                w.Op("add.s64", lseAddress, lsePointer, offset);
                w.Op("add.s64", deltaAddress, deltaPointer, offset);
                w.Op("mov.f32", lse, NegativeInfinity);
                w.Op("mov.f32", delta, Zero);
                w.OpIf(valid, false, "ld.global.nc.f32", lse, $"[{lseAddress}]");
                w.OpIf(valid, false, "ld.global.nc.f32", delta, $"[{deltaAddress}]");
                w.Op("setp.eq.f32", noKey, lse, NegativeInfinity);
                w.Op("mul.f32", lse, lse, PtxWriter.Float(-Log2E));
                w.OpIf(noKey, false, "mov.f32", lse, NegativeInfinity);
                var address = w.Temp("u32");
                w.Op("mad.lo.u32", address, column, 4, slot);
                w.Op("st.shared.f32", $"[{address}]", lse);
                w.Op("st.shared.f32", $"[{address}+{plan.BlockN * 4}]", delta);
            }
            w.Op("mbarrier.arrive.shared::cta.b64", state, $"[{StageBarrier(0, stage)}]");
            Advance(tile, stage, phase);
            w.Branch(loop);
            w.Label(end);
        }

        // ---------------------------------------------------------------- consumers

        private Reg biasStrideM2;
        private readonly Reg[] key = new Reg[2], keyValid = new Reg[2];
        private readonly Reg[] biasKey = new Reg[2], alibiKey = new Reg[2];
        private RegArray s = null!, dp = null!, p = null!, ds = null!, dk = null!, dv = null!;

        protected override void Consumer()
        {
            w.Comment("Consumer warpgroups: 64 key rows each; registers from the producer (PTX ISA 9.7.19.5).");
            if (mode == HopperMode.Fast)
                w.Op("setmaxnreg.inc.sync.aligned.u32", plan.ConsumerRegisters);
            ConsumerSetup();

            s = w.Array("f32", "s", plan.BlockN / 2);
            if (Keys)
            {
                dp = w.Array("f32", "dp", plan.BlockN / 2);
                ds = w.Array("b32", "ds", plan.BlockN / 4);
                dk = w.Array("f32", "dk", plan.HeadDim / 2);
                for (int i = 0; i < dk.Count; i++)
                    w.Op("mov.f32", dk[i], Zero);
            }
            if (Values)
            {
                p = w.Array("b32", "p", plan.BlockN / 4);
                dv = w.Array("f32", "dv", plan.HeadDim / 2);
                for (int i = 0; i < dv.Count; i++)
                    w.Op("mov.f32", dv[i], Zero);
            }

            w.Comment("Shared-memory matrix descriptors (PTX ISA 9.7.15.5.1): 128-byte swizzle, 8-row groups 1024 bytes apart.");
            var kAddress = w.U32("k_tile");
            w.Op("mad.lo.u32", kAddress, warpGroup, HopperPlan.WarpGroupRows * 128, smem);
            var vAddress = w.U32("v_tile");
            w.Op("add.u32", vAddress, kAddress, plan.QBytes);
            var qRing = w.U32("q_ring");
            var doRing = w.U32("do_ring");
            w.Op("add.u32", qRing, smem, plan.KOffset);
            w.Op("add.u32", doRing, smem, plan.VOffset);
            var descK = Descriptor("desc_k", kAddress, leadingBytes: 16);
            var descV = Descriptor("desc_v", vAddress, leadingBytes: 16);
            // Q and dO are B operands twice: K-major for Sᵀ and dPᵀ, MN-major (their head dim contiguous) for dK and dV.
            var descQRows = Descriptor("desc_q_rows", qRing, leadingBytes: 16);
            var descDoRows = Descriptor("desc_do_rows", doRing, leadingBytes: 16);
            var descQColumns = Descriptor("desc_q_columns", qRing, leadingBytes: plan.BlockN * 128);
            var descDoColumns = Descriptor("desc_do_columns", doRing, leadingBytes: plan.BlockN * 128);

            var (accumulate, overwrite, zero) = ScalePredicates();
            w.Comment("Wait for K and V.");
            MbarrierWait(BarrierAddress(BarrierQ()), zero);

            var (tile, stage, phase, _, h, m0, loop, end) = RingLoop("c");
            if (plan.ScoreMod || plan.MaskMod)
                modInvariant = ModPtxWriter.EmitHeadInvariant(w, mods!, h, "mod_args");
            MbarrierWait(StageBarrier(0, stage), phase);
            IssueSharedShared(s, plan.BlockN, descK, plan.BlockM, StageDescriptor(descQRows, stage), plan.BlockN, overwrite, accumulate);
            w.Op("wgmma.commit_group.sync.aligned");
            MbarrierWait(StageBarrier(2, stage), phase);
            if (Keys)
            {
                IssueSharedShared(dp, plan.BlockN, descV, plan.BlockM, StageDescriptor(descDoRows, stage), plan.BlockN, overwrite, accumulate);
                w.Op("wgmma.commit_group.sync.aligned");
            }

            var columnBase = w.S32("column_base");
            w.Op("add.s32", columnBase, m0, quad2);
            var vectors = w.U32("vectors");
            w.Op("mad.lo.u32", vectors, stage, plan.StageVectorBytes, smem);
            w.Op("add.u32", vectors, vectors, plan.VectorOffset);
            var quadBytes = w.Temp("u32");
            w.Op("mul.lo.u32", quadBytes, quad2, 4);
            w.Op("add.u32", vectors, vectors, quadBytes);
            w.Op("wgmma.wait_group.sync.aligned", Keys ? 1 : 0);

            if (plan.HasBias)
                AddBias(h, columnBase);
            else if (plan.ScoreMod)
                ScaleScores(s);
            if (plan.ScoreMod)
                ApplyScoreMod(h, columnBase, vectors);
            w.Comment("P^T = exp2(c * s - log2(e) * Lse[column]), the column's value from the stage's vectors.");
            var pair = w.Array("f32", "row_pair", 2);
            for (int group8 = 0; group8 < s.Count / 4; group8++)
            {
                w.Op("ld.shared.v2.f32", pair.List(), $"[{vectors}+{32 * group8}]");
                for (int i = 4 * group8; i < 4 * group8 + 4; i++)
                {
                    w.Op("fma.rn.f32", s[i], s[i], cLog2, pair[i % 2]);
                    w.Op("ex2.approx.ftz.f32", s[i], s[i]);
                }
            }
            // Masked P^T is zeroed after the exp, not set to -inf before it: a NaN Lse (a row that saw a NaN) would make
            // exp2(-inf - NaN) = NaN on keys the row cannot see, and that NaN would reach their dV.
            MaskBoundaryTile(QueryMaskComment, m0, columnBase, s, Zero);
            if (plan.MaskMod)
                ApplyMaskMod(h, columnBase);
            if (Keys)
            {
                if (plan.ScoreMod)
                {
                    w.Comment("dS^T = P^T * dP', dP' = (dP^T - Delta[column]) * d(score mod)/d(score) already in dP's registers.");
                    for (int i = 0; i < dp.Count; i++)
                        w.Op("mul.f32", dp[i], dp[i], s[i]);
                }
                else
                {
                    w.Op("wgmma.wait_group.sync.aligned", 0);
                    w.Comment("dS^T = P^T * (dP^T - Delta[column]), in dP's registers.");
                    for (int group8 = 0; group8 < dp.Count / 4; group8++)
                    {
                        w.Op("ld.shared.v2.f32", pair.List(), $"[{vectors}+{plan.BlockN * 4 + 32 * group8}]");
                        for (int i = 4 * group8; i < 4 * group8 + 4; i++)
                        {
                            w.Op("sub.f32", dp[i], dp[i], pair[i % 2]);
                            w.Op("mul.f32", dp[i], dp[i], s[i]);
                        }
                    }
                }
                // A NaN or Inf in dP where P is masked must not reach dK: masked entries are zeroed, not multiplied.
                MaskBoundaryTile(QueryMaskComment, m0, columnBase, dp, Zero);
                if (plan.MaskMod)
                    ZeroWhereHidden(dp, s, fullTile);
            }
            string? cleanTile = null;
            if (mode != HopperMode.Fast)
            {
                // Sᵀ and dPᵀ have read this stage's Q and dO; dK += dSᵀ Q and dV += Pᵀ dO must not multiply a zero of dS
                // or P by a NaN or Inf of them.
                w.Op("wgmma.wait_group.sync.aligned", 0);
                if (Keys && mode == HopperMode.Sanitize)
                    RewriteStagedTile("q", qRing, stage);
                if (Values)
                    cleanTile = RewriteStagedTile("do", doRing, stage);
            }
            bool keys = Keys && mode != HopperMode.Poison;
            if (Values)
            {
                if (mode == HopperMode.Poison)
                    PackIndicators(p, s);
                else
                    Pack(p, s);
            }
            if (keys)
                Pack(ds, dp);
            if (Values)
                IssueRegisterShared(dv, p, StageDescriptor(descDoColumns, stage), plan.BlockN, accumulate, fence: true);
            if (keys)
                IssueRegisterShared(dk, ds, StageDescriptor(descQColumns, stage), plan.BlockN, accumulate, fence: !Values);
            w.Op("wgmma.commit_group.sync.aligned");
            w.Op("wgmma.wait_group.sync.aligned", 0);
            if (cleanTile is not null)
                w.Label(cleanTile);
            w.Op("mbarrier.arrive.shared::cta.b64", state, $"[{StageBarrier(1, stage)}]");
            w.Op("mbarrier.arrive.shared::cta.b64", state, $"[{StageBarrier(3, stage)}]");
            Advance(tile, stage, phase);
            w.Branch(loop);

            w.Label(end);
            w.Comment(plan.Gradients switch
            {
                KvGradients.Keys => "Epilogue: dK = scale * dS^T Q, summed over the group's query heads.",
                KvGradients.Values => "Epilogue: dV = P^T dO, summed over the group's query heads.",
                _ => "Epilogue: dV = P^T dO and dK = scale * dS^T Q, summed over the group's query heads.",
            });
            var hkv = w.U32("hkv");
            w.Op("div.u32", hkv, hq, group);
            if (mode == HopperMode.Poison)
            {
                PoisonRows(dv, LoadPointer("dv"), key, keyValid, mkv, hkv, hk, quad2);
                EndRole();
                return;
            }
            Reg? seen = mode == HopperMode.Fast ? nanSeen : null;
            if (Values)
                StoreRows(dv, LoadPointer("dv"), key, keyValid, mkv, hkv, hk, quad2, new[] { PtxWriter.Float(1f), PtxWriter.Float(1f) }, seen);
            if (Keys)
                StoreRows(dk, LoadPointer("dk"), key, keyValid, mkv, hkv, hk, quad2, new[] { scale.Name, scale.Name }, seen);
            EndRole();
        }

        /// <summary>
        /// A thread's two key rows (r and r + 8 of its warp's 16) and, for each, the query rows [lo, hi) that see it; the
        /// warp's tightest bounds decide which tiles need the mask at all. Every valid key row's bound stops at Mq, so the
        /// last tile's rows past Mq are masked too.
        /// </summary>
        private void ConsumerSetup()
        {
            var (warp, laneRow) = ConsumerLanes();

            var first = w.S32("first_key");
            w.Op("mad.lo.s32", first, warpGroup, HopperPlan.WarpGroupRows, n0);
            w.Op("mad.lo.s32", first, warp, 16, first);
            w.Op("add.s32", first, first, laneRow);

            Reg kvSegment = default, qStart = default, kvStart = default;
            if (plan.BlockDiagonal)
            {
                kvSegment = LoadPointer("kv_segment");
                qStart = LoadPointer("q_start");
                kvStart = LoadPointer("kv_start");
            }
            if (plan.TensorBias)
            {
                var strideM = w.Scalar("s64", "bias_sm");
                w.Op("ld.param.u64", strideM, "[bias_stride_m]");
                biasStrideM2 = w.Scalar("s64", "bias_sm2");
                w.Op("shl.b64", biasStrideM2, strideM, 1);
            }
            for (int r = 0; r < 2; r++)
            {
                key[r] = w.S32("key" + r);
                keyValid[r] = w.Pred("key_valid" + r);
                lo[r] = w.S32("lo" + r);
                hi[r] = w.S32("hi" + r);
                w.Op("add.s32", key[r], first, 8 * r);
                w.Op("setp.lt.s32", keyValid[r], key[r], mkv);
                VisibleQueries(r, kvSegment, qStart, kvStart);
                if (plan.ScoreMod || plan.MaskMod)
                    (modBatch[r], modKv[r], modQShift[r]) = ModPositions(r, key[r], keyValid[r], kvSegment, kvStart, qStart, "mod_kv", "mod_q_shift");
                if (plan.TensorBias)
                {
                    // The key's part of the bias offset: 2 · j · stride_n bytes.
                    var strideN = w.Temp("s64");
                    var index = w.Temp("s64");
                    var safeKey = w.Temp("s32");
                    biasKey[r] = w.Scalar("s64", "bias_key" + r);
                    w.Op("ld.param.u64", strideN, "[bias_stride_n]");
                    w.Op("selp.s32", safeKey, key[r], 0, keyValid[r]);
                    w.Op("cvt.s64.s32", index, safeKey);
                    w.Op("mul.lo.s64", biasKey[r], index, strideN);
                    w.Op("shl.b64", biasKey[r], biasKey[r], 1);
                }
            }

            WarpBounds("The warp's tightest query bounds: a tile inside [max lo, min hi) needs no mask.");
            w.Blank();
        }

        /// <summary>
        /// Key row r's viewers [lo, hi) by the mask kind (the transpose of the forward's visible keys); a key row past Mkv
        /// is seen by every query (it is never stored).
        /// </summary>
        private void VisibleQueries(int r, Reg kvSegment, Reg qStart, Reg kvStart)
        {
            var j = key[r];
            w.Op("mov.s32", hi[r], mq);
            switch (plan.Mask)
            {
                case MaskKind.Causal:
                    w.Op("mov.s32", lo[r], j);
                    break;
                case MaskKind.CausalFromBottomRight:
                    w.Op("sub.s32", lo[r], j, mkv);
                    w.Op("add.s32", lo[r], lo[r], mq);
                    break;
                case MaskKind.CausalLocalFromBottomRight:
                    // [j − (Mkv − Mq), j − (Mkv − Mq) + window).
                    w.Op("sub.s32", lo[r], j, mkv);
                    w.Op("add.s32", lo[r], lo[r], mq);
                    w.Op("add.s32", hi[r], lo[r], window);
                    w.Op("min.s32", hi[r], hi[r], mq);
                    break;
                case MaskKind.BlockDiagonalCausalFromBottomRight:
                case MaskKind.BlockDiagonalCausalLocal:
                case MaskKind.BlockDiagonalCausalLocalFromBottomRight:
                {
                    var segment = SegmentRange(r, j, keyValid[r], kvSegment, qStart);
                    if (plan.Alibi)
                    {
                        // ALiBi within the segment: slope · ((j − KvStart[s]) − (i − QStart[s])) = slope · (a_j − i).
                        var segmentKvStart = w.Temp("s32");
                        var segmentQStart = w.Temp("s32");
                        LoadInt(segmentKvStart, kvStart, segment, 0);
                        LoadInt(segmentQStart, qStart, segment, 0);
                        alibiKey[r] = w.S32("alibi_key" + r);
                        w.Op("sub.s32", alibiKey[r], j, segmentKvStart);
                        w.Op("add.s32", alibiKey[r], alibiKey[r], segmentQStart);
                    }
                    // The key's first viewer, j minus the segment's diagonal; with a window, the rows before its first viewer
                    // plus the window.
                    var viewer = w.S32("first_viewer" + r);
                    SegmentDiagonal(viewer, segment, qStart, kvStart);
                    w.Op("sub.s32", viewer, j, viewer);
                    w.Op("max.s32", lo[r], lo[r], viewer);
                    if (plan.Local)
                    {
                        w.Op("add.s32", viewer, viewer, window);
                        w.Op("min.s32", hi[r], hi[r], viewer);
                    }
                    break;
                }
                case MaskKind.BlockDiagonal:
                case MaskKind.BlockDiagonalCausal:
                {
                    var segment = SegmentRange(r, j, keyValid[r], kvSegment, qStart);
                    var segmentKvStart = w.S32("segment_kv_start" + r);
                    LoadInt(segmentKvStart, kvStart, segment, 0);
                    if (plan.Mask == MaskKind.BlockDiagonalCausal)
                    {
                        var offset = w.Temp("s32");
                        w.Op("sub.s32", offset, j, segmentKvStart);
                        w.Op("add.s32", lo[r], lo[r], offset);
                    }
                    if (plan.Alibi)
                    {
                        // ALiBi within the segment: slope · ((j − KvStart[s]) − (i − QStart[s])) = slope · (a_j − i).
                        alibiKey[r] = w.S32("alibi_key" + r);
                        var segmentQStart = w.Temp("s32");
                        LoadInt(segmentQStart, qStart, segment, 0);
                        w.Op("sub.s32", alibiKey[r], j, segmentKvStart);
                        w.Op("add.s32", alibiKey[r], alibiKey[r], segmentQStart);
                    }
                    break;
                }
                default:
                    w.Op("mov.s32", lo[r], 0);
                    break;
            }
            if (plan.Alibi && !plan.BlockDiagonal)
            {
                alibiKey[r] = w.S32("alibi_key" + r);
                w.Op("mov.s32", alibiKey[r], j);
            }
            w.Op("max.s32", lo[r], lo[r], 0);
            w.Op("selp.s32", lo[r], lo[r], 0, keyValid[r]);
            w.Op("selp.s32", hi[r], hi[r], 0x7fffffff, keyValid[r]);
        }

        /// <summary>The mods' subexpressions of the current tile's query head alone, computed once a tile (<see cref="ModPtxWriter.EmitHeadInvariant"/>).</summary>
        private IReadOnlyDictionary<ModExpr, Reg>? modInvariant;

        /// <summary>What the mods see of a thread's key row r: the batch (the segment when packed), the key's position, the query shift.</summary>
        private readonly Reg[] modBatch = new Reg[2], modKv = new Reg[2], modQShift = new Reg[2];

        /// <summary>The mods' inputs for element i of Sᵀ: its key row's batch and position, the tile's query head, the query's position.</summary>
        private ModPtxInputs ModInputs(int i, Reg h, Reg columnBase, Reg score)
        {
            var (half, column) = Element(i);
            var q = w.Temp("s32");
            w.Op("add.s32", q, columnBase, column);
            w.Op("sub.s32", q, q, modQShift[half]);
            return new ModPtxInputs(score, modBatch[half], h, q, modKv[half], "mod_args", modInvariant) { Distance = ScoreDistance(half, column, rowsAreKeys: true) };
        }

        /// <summary>
        /// score = ScoreMod(score, …) on every score of the tile; in a pass that forms dSᵀ, first dP' = (dPᵀ − Delta) ·
        /// d(ScoreMod)/d(score) at the unmodified score, into dP's registers (the chain rule: dSᵀ = Pᵀ ∘ dP' is then the
        /// gradient of the score before the mod, the bias's and scale · qk's).
        /// </summary>
        private void ApplyScoreMod(Reg h, Reg columnBase, Reg vectors)
        {
            if (Keys)
            {
                w.Op("wgmma.wait_group.sync.aligned", 0);
                w.Comment("The score mod " + mods!.ScoreMethod + " on every score of the tile, and dP' = (dP^T - Delta[column]) * its derivative.");
            }
            else
            {
                w.Comment("The score mod " + mods!.ScoreMethod + " on every score of the tile.");
            }
            ModDistances(columnBase, modKv, modQShift, rowsAreKeys: true);
            var pair = w.Array("f32", "delta_pair", 2);
            for (int group8 = 0; group8 < s.Count / 4; group8++)
            {
                if (Keys)
                    w.Op("ld.shared.v2.f32", pair.List(), $"[{vectors}+{plan.BlockN * 4 + 32 * group8}]");
                for (int i = 4 * group8; i < 4 * group8 + 4; i++)
                {
                    var inputs = ModInputs(i, h, columnBase, s[i]);
                    if (Keys)
                    {
                        var (result, derivative) = ModPtxWriter.EmitScoreAndGrad(w, mods, inputs);
                        w.Op("sub.f32", dp[i], dp[i], pair[i % 2]);
                        w.Op("mul.f32", dp[i], dp[i], derivative);
                        w.Op("mov.f32", s[i], result);
                    }
                    else
                    {
                        w.Op("mov.f32", s[i], ModPtxWriter.EmitScore(w, mods, inputs));
                    }
                }
            }
        }

        /// <summary>On a tile the block list marks partial, Pᵀ is zeroed wherever the mask mod hides the score.</summary>
        private void ApplyMaskMod(Reg h, Reg columnBase)
        {
            w.Comment("The mask mod " + mods!.MaskMethod + ", on tiles the block list marks partial: P^T = 0 where it hides the score.");
            var skip = w.NewLabel("full_tile");
            w.BranchIf(fullTile, false, skip);
            for (int i = 0; i < s.Count; i++)
            {
                var keep = ModPtxWriter.EmitMask(w, mods, ModInputs(i, h, columnBase, s[i]));
                w.Op("selp.f32", s[i], s[i], Zero, keep);
            }
            w.Label(skip);
        }

        /// <summary>score = scale · qk + bias in natural units, element (key j, query i) of the transposed tile.</summary>
        private void AddBias(Reg h, Reg columnBase)
        {
            if (plan.TensorBias)
            {
                w.Comment("Tensor bias: element (i, j) at 2 * (b*sb + h*sh + i*sm + j*sn) bytes; columns past Mq read nothing.");
                var basePointer = LoadPointer("bias");
                var offset = w.Scalar("s64", "bias_tile");
                var stride = w.Temp("s64");
                var index = w.Temp("s64");
                w.Op("ld.param.u64", stride, "[bias_stride_b]");
                w.Op("cvt.s64.u32", index, b);
                w.Op("mul.lo.s64", offset, index, stride);
                w.Op("ld.param.u64", stride, "[bias_stride_h]");
                w.Op("cvt.s64.u32", index, h);
                w.Op("mad.lo.s64", offset, index, stride, offset);
                w.Op("shl.b64", offset, offset, 1);
                w.Op("cvt.s64.s32", index, columnBase);
                w.Op("mad.lo.s64", offset, index, biasStrideM2, offset);
                w.Op("add.s64", offset, offset, basePointer);
                var limit = w.S32("bias_limit");
                w.Op("sub.s32", limit, mq, columnBase);
                var tileRow = new Reg[2];
                for (int r = 0; r < 2; r++)
                {
                    tileRow[r] = w.U64("bias_tile_row" + r);
                    w.Op("add.s64", tileRow[r], offset, biasKey[r]);
                }
                AddTensorBias(s, limit, keyValid, biasStrideM2, tileRow);
            }
            else
            {
                w.Comment("ALiBi in the kernel: score = scale * qk + slope * (j - i) (within the segment for packed rows).");
                var slopes = LoadPointer("alibi_slopes");
                var slope = w.F32("alibi_slope");
                var address = w.Temp("u64");
                w.Op("mul.wide.u32", address, h, 4);
                w.Op("add.s64", address, address, slopes);
                w.Op("ld.global.nc.f32", slope, $"[{address}]");
                var negSlope = w.F32("alibi_neg_slope");
                w.Op("neg.f32", negSlope, slope);
                var rowBias = new Reg[2];
                for (int r = 0; r < 2; r++)
                {
                    var distance = w.Temp("s32");
                    var distanceF = w.Temp("f32");
                    rowBias[r] = w.F32("alibi_row" + r);
                    w.Op("sub.s32", distance, alibiKey[r], columnBase);
                    w.Op("cvt.rn.f32.s32", distanceF, distance);
                    w.Op("mul.f32", rowBias[r], distanceF, slope);
                }
                var value = w.F32("alibi_value");
                for (int i = 0; i < s.Count; i++)
                {
                    var (half, column) = Element(i);
                    w.Op("fma.rn.f32", value, negSlope, PtxWriter.Float(column), rowBias[half]);
                    w.Op("fma.rn.f32", s[i], s[i], scale, value);
                }
            }
        }

    }
}
