using System;
using System.Linq;

namespace XFormers.Hopper
{
    /// <summary>
    /// One decode module's configuration, the one place its numbers live (FlashAttention's kernel_traits): the element
    /// type, the head dim, whether keys come through a block table, the key tile, the ring's stages and the shared memory
    /// a CTA asks for. The emitter, the launcher and the tests read the same values.
    /// </summary>
    internal sealed record DecodeTraits(bool BFloat16, int HeadDim, bool Paged)
    {
        /// <summary>Warps a CTA: each runs its own pipeline over every fourth key tile of the CTA's chunk.</summary>
        public const int Warps = 4;

        public const int Threads = Warps * 32;

        /// <summary>Keys a tile: two n-tiles of Q·Kᵀ (m16n8k16) and one k-step of P·V.</summary>
        public const int TileKeys = 16;

        /// <summary>Query rows a CTA serves at most: the m of m16n8k16 (queries × query heads of one key/value head).</summary>
        public const int MaxRows = 16;

        /// <summary>Bytes of one key (or value) row of one head.</summary>
        public int RowBytes => HeadDim * 2;

        /// <summary>16-byte chunks a row: the unit of cp.async and of the swizzle.</summary>
        public int ChunksPerRow => HeadDim / 8;

        /// <summary>One stage of a warp's ring: a tile of keys, then a tile of values.</summary>
        public int StageBytes => 2 * TileKeys * RowBytes;

        /// <summary>
        /// Stages of each warp's ring: about 24 KB a warp (96 KB a CTA, two CTAs a multiprocessor) so that each warp keeps
        /// two or more tiles in flight; HeadDim 256 keeps the minimum of two (32 KB a warp).
        /// </summary>
        public int Stages => Math.Max(2, 24 * 1024 / StageBytes);

        public int RingBytes => Warps * Stages * StageBytes;

        /// <summary>The final merge of the warps' states (O rows, then max and sum), over the ring once it is drained.</summary>
        public int MergeBytes => Warps * MaxRows * (HeadDim + 2) * 4;

        public int SharedBytes => Math.Max(RingBytes, MergeBytes);

        public string Element => BFloat16 ? "bf16" : "f16";

        public string EntryPoint => $"xformers_decode_{Element}_{HeadDim}_{(Paged ? "paged" : "padded")}";

        /// <summary>The head dims the module is written for: a row is 8, 16 or 32 chunks, at least one swizzle period.</summary>
        public static bool TakesHeadDim(int headDim) => headDim is 64 or 128 or 256;
    }

    /// <summary>
    /// Writes the decode kernel as PTX for the CUDA driver (sm_80 instructions: cp.async, ldmatrix, mma.sync; launched on the
    /// H200 through <see cref="HopperDecode"/>). A CTA owns one (sequence, key/value head, key chunk) and all the query
    /// rows that head serves (at most 16: the m of one mma). Each of its four warps streams every fourth 16-key tile of the
    /// chunk through its own ring of shared-memory stages with cp.async (so registers no longer bound the bytes in flight),
    /// computes S = Q·Kᵀ and O += P·V with mma.sync from ldmatrix fragments of the swizzled tiles, and keeps an online
    /// softmax per row. The warps' states merge through shared memory at the end; one chunk writes O and LSE, several write
    /// partial results for <see cref="Kernels.DecodeAttention.CombineKernel{TWiden}"/>. The launcher sends only calls in
    /// which every row sees the same keys (one query a sequence, or no causal mask), so a key past the chunk is the only
    /// masked key: it is never loaded (cp.async fills zeros) and its score is −∞, so a NaN there reaches no row.
    /// </summary>
    internal sealed class DecodeEmitter
    {
        private const string NegativeInfinity = "0fFF800000";
        private const string Zero = "0f00000000";

        private readonly DecodeTraits t;
        private readonly PtxWriter w = new();

        private DecodeEmitter(DecodeTraits traits) => t = traits;

        /// <summary>The entry point's parameters, in the order <see cref="HopperDecode"/> passes them.</summary>
        internal static readonly string[] Parameters =
        {
            ".param .u64 q", ".param .u64 k", ".param .u64 v",
            ".param .u64 sequences", ".param .u32 uniform_q", ".param .u32 uniform_kv",
            ".param .u64 block_table", ".param .u32 pages_per_sequence", ".param .u32 page_size",
            ".param .u32 hq", ".param .u32 hkv", ".param .f32 scale_log2",
            ".param .u32 chunk_keys", ".param .u32 chunks", ".param .u32 q_rows",
            ".param .u64 o", ".param .u64 lse", ".param .u64 partial_o", ".param .u64 partial_lse",
        };

        /// <summary>The whole module: header and its one entry point.</summary>
        public static string Emit(DecodeTraits traits)
        {
            if (!DecodeTraits.TakesHeadDim(traits.HeadDim))
                throw new ArgumentOutOfRangeException(nameof(traits), traits.HeadDim, "The decode module is written for head dims 64, 128 and 256.");
            var emitter = new DecodeEmitter(traits);
            emitter.Kernel();
            return
                "// Decode attention (" + traits.Element + ", HeadDim " + traits.HeadDim + ", " + (traits.Paged ? "paged" : "padded") +
                " keys): " + DecodeTraits.Warps + " warps, " + DecodeTraits.TileKeys + "-key tiles, " + traits.Stages +
                " stages a warp, " + traits.SharedBytes + " bytes of dynamic shared memory.\n" +
                ".version 8.0\n.target sm_80\n.address_size 64\n\n" +
                ".extern .shared .align 128 .b8 smem[];\n\n" +
                ".visible .entry " + traits.EntryPoint + "(\n" +
                string.Join(",\n", Parameters.Select(p => "    " + p)) + ")\n" +
                ".maxntid " + DecodeTraits.Threads + ", 1, 1\n{\n" +
                emitter.w.Body() +
                "}\n";
        }

        // Registers of the whole kernel.
        private Reg lane = default, warp = default, chunk = default, head = default, sequence = default;
        private Reg qStart = default, qLen = default, kvStart = default, kvLen = default, group = default, rows = default;
        private Reg keyEnd = default, hq = default, hkv = default;
        private Reg kBase = default, valueDelta = default, rowStride = default, smemBase = default, ring = default;
        private Reg blockTable = default, pageSize = default;
        private Reg laneKey = default, laneChunk16 = default;
        private RegArray qa = null!, s = null!, o = null!, pa = null!, b = null!;
        private Reg[] rowMax = null!, rowSum = null!;

        private void Kernel()
        {
            Setup();
            LoadQuery();
            MainLoop();
            Merge();
        }

        // ---------------------------------------------------------------- setup

        private void Setup()
        {
            w.Comment("The CTA's (sequence, key/value head, chunk), the sequence's rows and keys, and the chunk's key range.");
            var tid = w.U32("thread");
            lane = w.U32("lane");
            warp = w.U32("warp");
            w.Op("mov.u32", tid, "%tid.x");
            w.Op("and.b32", lane, tid, 31);
            w.Op("shr.u32", warp, tid, 5);
            var block = w.U32("block");
            var chunks = w.U32("chunks");
            hkv = w.U32("hkv");
            hq = w.U32("hq");
            chunk = w.U32("chunk");
            head = w.U32("head");
            sequence = w.U32("sequence");
            w.Op("mov.u32", block, "%ctaid.x");
            w.Op("ld.param.u32", chunks, "[chunks]");
            w.Op("ld.param.u32", hkv, "[hkv]");
            w.Op("ld.param.u32", hq, "[hq]");
            w.Op("rem.u32", chunk, block, chunks);
            w.Op("div.u32", block, block, chunks);
            w.Op("rem.u32", head, block, hkv);
            w.Op("div.u32", sequence, block, hkv);

            qStart = w.S32("q_start");
            qLen = w.S32("q_len");
            kvStart = w.S32("kv_start");
            kvLen = w.S32("kv_len");
            var table = w.U64("sequences");
            var uniform = w.Pred("uniform");
            var tableRead = w.NewLabel("table_read");
            w.Op("ld.param.u64", table, "[sequences]");
            w.Op("setp.eq.u64", uniform, table, 0);
            w.Comment("No sequence table: every sequence has uniform_q queries and uniform_kv keys, packed.");
            w.Op("ld.param.u32", qLen, "[uniform_q]");
            w.Op("ld.param.u32", kvLen, "[uniform_kv]");
            w.Op("mul.lo.s32", qStart, sequence, qLen);
            w.Op("mul.lo.s32", kvStart, sequence, kvLen);
            w.BranchIf(uniform, false, tableRead);
            w.Comment("Four ints a sequence: qStart, qLen, kvStart, kvLen.");
            var entry = w.U64("sequence_entry");
            w.Op("mul.wide.u32", entry, sequence, 16);
            w.Op("add.s64", entry, table, entry);
            w.Op("ld.global.nc.v4.u32", "{" + qStart + ", " + qLen + ", " + kvStart + ", " + kvLen + "}", "[" + entry + "]");
            w.Label(tableRead);

            group = w.U32("group");
            rows = w.U32("rows");
            var none = w.Pred("no_rows");
            w.Op("div.u32", group, hq, hkv);
            w.Op("mul.lo.u32", rows, qLen, group);
            w.Op("setp.eq.u32", none, rows, 0);
            w.OpIf(none, false, "exit");

            var chunkKeys = w.S32("chunk_keys");
            var keyBegin = w.S32("key_begin");
            keyEnd = w.S32("key_end");
            w.Op("ld.param.u32", chunkKeys, "[chunk_keys]");
            w.Op("mul.lo.s32", keyBegin, chunk, chunkKeys);
            w.Op("add.s32", keyEnd, keyBegin, chunkKeys);
            w.Op("min.s32", keyEnd, keyEnd, kvLen);
            tileBegin = keyBegin;

            w.Comment("Key and value rows: row r of head h at (r * hkv + h) * RowBytes; this lane's chunk column of the row.");
            var k = w.U64("k");
            var v = w.U64("v");
            kBase = w.U64("k_base");
            valueDelta = w.U64("value_delta");
            rowStride = w.U64("row_stride");
            w.Op("ld.param.u64", k, "[k]");
            w.Op("ld.param.u64", v, "[v]");
            w.Op("sub.s64", valueDelta, v, k);
            w.Op("mul.wide.u32", rowStride, hkv, t.RowBytes);
            var headOffset = w.U64("head_offset");
            w.Op("mul.wide.u32", headOffset, head, t.RowBytes);
            w.Op("add.s64", kBase, k, headOffset);
            // Lane l copies chunk column l mod ChunksPerRow of key rows l / ChunksPerRow + j · (32 / ChunksPerRow).
            laneKey = w.U32("lane_key");
            var laneChunk = w.U32("lane_chunk");
            if (t.ChunksPerRow >= 32)
                w.Op("mov.u32", laneKey, 0);
            else
                w.Op("shr.u32", laneKey, lane, Log2(t.ChunksPerRow));
            w.Op("and.b32", laneChunk, lane, t.ChunksPerRow - 1);
            var chunkOffset = w.U64("chunk_offset");
            w.Op("mul.wide.u32", chunkOffset, laneChunk, 16);
            w.Op("add.s64", kBase, kBase, chunkOffset);
            // The swizzle: chunk c of key row r sits at chunk c xor (r mod 8), so ldmatrix's eight rows hit eight banks.
            // Row r = j · (32 / ChunksPerRow) + laneKey, and j · (32 / ChunksPerRow) mod 8 has no bit in common with laneKey.
            laneChunk16 = w.U32("lane_chunk16");
            w.Op("xor.b32", laneChunk16, laneChunk, laneKey);
            w.Op("shl.b32", laneChunk16, laneChunk16, 4);

            if (t.Paged)
            {
                blockTable = w.U64("block_table");
                pageSize = w.U32("page_size");
                var pages = w.U32("pages_per_sequence");
                var offset = w.U64("table_offset");
                w.Op("ld.param.u64", blockTable, "[block_table]");
                w.Op("ld.param.u32", pageSize, "[page_size]");
                w.Op("ld.param.u32", pages, "[pages_per_sequence]");
                w.Op("mul.wide.u32", offset, sequence, pages);
                w.Op("shl.b64", offset, offset, 2);
                w.Op("add.s64", blockTable, blockTable, offset);
            }

            smemBase = w.U32("smem_base");
            ring = w.U32("ring");
            w.Op("mov.u32", smemBase, "smem");
            w.Op("mad.lo.u32", ring, warp, t.Stages * t.StageBytes, smemBase);
        }

        private Reg tileBegin;

        // ---------------------------------------------------------------- the query rows as A fragments

        /// <summary>
        /// Q as m16n8k16 A fragments, one set a 16-column k-step (PTX ISA 9.7.13.4.8): lane 4g + c holds rows g and g + 8,
        /// columns 2c, 2c + 1 and 2c + 8, 2c + 9. Row r is query r / group of the sequence, query head head · group + r mod
        /// group; rows past the CTA's are zeros.
        /// </summary>
        private void LoadQuery()
        {
            w.Comment("Q fragments: rows g and g + 8 of the CTA's rows (query r / group, query head head * group + r % group).");
            int steps = t.HeadDim / 16;
            qa = w.Array("b32", "qa", 4 * steps);
            s = w.Array("f32", "s", 8);
            o = w.Array("f32", "o", t.HeadDim / 2);
            pa = w.Array("b32", "pa", 4);
            b = w.Array("b32", "b", 4);
            var g = w.U32("g");
            var c = w.U32("c");
            w.Op("shr.u32", g, lane, 2);
            w.Op("and.b32", c, lane, 3);
            var q = w.U64("q");
            w.Op("ld.param.u64", q, "[q]");
            for (int half = 0; half < 2; half++)
            {
                var r = w.U32("q_row" + half);
                var valid = w.Pred("q_valid" + half);
                var query = w.U32("q_query" + half);
                var queryHead = w.U32("q_head" + half);
                var address = w.U64("q_address" + half);
                var index = w.U32("q_index" + half);
                w.Op("add.u32", r, g, 8 * half);
                w.Op("setp.lt.u32", valid, r, rows);
                w.Op("div.u32", query, r, group);
                w.Op("rem.u32", queryHead, r, group);
                w.Op("add.u32", query, query, qStart);
                w.Op("mad.lo.u32", queryHead, head, group, queryHead);
                w.Op("mad.lo.u32", index, query, hq, queryHead);
                w.Op("mul.wide.u32", address, index, t.RowBytes);
                w.Op("add.s64", address, address, q);
                var column = w.U64("q_column" + half);
                w.Op("mul.wide.u32", column, c, 4);
                w.Op("add.s64", address, address, column);
                for (int kk = 0; kk < steps; kk++)
                {
                    for (int part = 0; part < 2; part++)
                    {
                        var target = qa[4 * kk + half + 2 * part];
                        w.Op("mov.b32", target, 0);
                        w.OpIf(valid, false, "ld.global.nc.b32", target, "[" + address + "+" + (32 * kk + 16 * part) + "]");
                    }
                }
            }
            for (int i = 0; i < o.Count; i++)
                w.Op("mov.f32", o[i], Zero);
            rowMax = new[] { w.F32("row_max0"), w.F32("row_max1") };
            rowSum = new[] { w.F32("row_sum0"), w.F32("row_sum1") };
            foreach (var m in rowMax)
                w.Op("mov.f32", m, NegativeInfinity);
            foreach (var l in rowSum)
                w.Op("mov.f32", l, Zero);
        }

        // ---------------------------------------------------------------- the warp's pipeline

        private Reg mine = default, scaleLog2 = default;

        /// <summary>
        /// Warp w's tiles are w, w + 4, …, of the chunk. Stages − 1 tiles are issued before the loop; each iteration issues
        /// one more, waits for the oldest (cp.async.wait_group Stages − 1), computes it, and frees its stage.
        /// </summary>
        private void MainLoop()
        {
            w.Comment("This warp's tiles: w, w + 4, ... of the chunk's ceil(keys / 16).");
            var tiles = w.S32("tiles");
            mine = w.S32("mine");
            w.Op("sub.s32", tiles, keyEnd, tileBegin);
            w.Op("add.s32", tiles, tiles, DecodeTraits.TileKeys - 1);
            w.Op("shr.s32", tiles, tiles, Log2(DecodeTraits.TileKeys));
            w.Op("max.s32", tiles, tiles, 0);
            w.Op("sub.s32", mine, tiles, warp);
            w.Op("add.s32", mine, mine, DecodeTraits.Warps - 1);
            w.Op("shr.s32", mine, mine, Log2(DecodeTraits.Warps));
            w.Op("max.s32", mine, mine, 0);
            scaleLog2 = w.F32("scale_log2");
            w.Op("ld.param.f32", scaleLog2, "[scale_log2]");

            var issueSlot = w.U32("issue_slot");
            var computeSlot = w.U32("compute_slot");
            var issued = w.S32("issued");
            var computed = w.S32("computed");
            w.Op("mov.u32", issueSlot, ring);
            w.Op("mov.u32", computeSlot, ring);
            w.Op("mov.s32", issued, 0);
            w.Op("mov.s32", computed, 0);
            w.Comment("Prologue: the first Stages - 1 tiles.");
            for (int stage = 0; stage < t.Stages - 1; stage++)
            {
                IssueTile(issued, issueSlot);
                Advance(issued, issueSlot);
            }

            var loop = w.NewLabel("tile_loop");
            var done = w.NewLabel("tiles_done");
            var finished = w.Pred("finished");
            w.Label(loop);
            w.Op("setp.ge.s32", finished, computed, mine);
            w.BranchIf(finished, false, done);
            IssueTile(issued, issueSlot);
            Advance(issued, issueSlot);
            w.Comment("The oldest tile has landed (each lane's copies), and every lane's copies are visible to the warp.");
            w.Op("cp.async.wait_group", t.Stages - 1);
            w.Op("bar.warp.sync", "0xffffffff");
            ComputeTile(computed, computeSlot);
            w.Comment("Every lane has read the stage before any lane refills it.");
            w.Op("bar.warp.sync", "0xffffffff");
            Advance(computed, computeSlot);
            w.Branch(loop);
            w.Label(done);
            w.Op("cp.async.wait_all");
        }

        /// <summary>The next tile of the warp and the next stage of its ring.</summary>
        private void Advance(Reg count, Reg slot)
        {
            var wrap = w.Pred("wrap");
            w.Op("add.s32", count, count, 1);
            w.Op("add.u32", slot, slot, t.StageBytes);
            w.Op("sub.u32", wrapLimit, slot, ring);
            w.Op("setp.ge.u32", wrap, wrapLimit, t.Stages * t.StageBytes);
            w.OpIf(wrap, false, "mov.u32", slot, ring);
        }

        private Reg wrapLimit => w.U32("wrap_offset");

        /// <summary>
        /// cp.async of the warp's <paramref name="index"/>-th tile (if it has one) into <paramref name="slot"/>: its key rows,
        /// then its value rows, 16 bytes a lane a copy, swizzled; rows past the chunk are filled with zeros, not read. The
        /// group is committed either way, so that wait_group counts tiles.
        /// </summary>
        private void IssueTile(Reg index, Reg slot)
        {
            var skip = w.NewLabel("no_tile");
            var none = w.Pred("no_tile");
            w.Op("setp.ge.s32", none, index, mine);
            w.BranchIf(none, false, skip);
            var first = w.S32("tile_first");
            var left = w.S32("tile_left");
            // Tile (warp + 4 · index) starts at key tileBegin + 16 · (warp + 4 · index).
            w.Op("shl.b32", first, index, Log2(DecodeTraits.Warps));
            w.Op("add.s32", first, first, warp);
            w.Op("shl.b32", first, first, Log2(DecodeTraits.TileKeys));
            w.Op("add.s32", first, first, tileBegin);
            w.Op("sub.s32", left, keyEnd, first);
            w.Op("sub.s32", left, left, laneKey);
            // Destination: slot + (this lane's first row) · RowBytes, plus row j's offset (an immediate) and swizzle.
            var laneSlot = w.U32("lane_slot");
            w.Op("mad.lo.u32", laneSlot, laneKey, t.RowBytes, slot);
            int copies = t.ChunksPerRow / 2;
            int rowStep = 32 / t.ChunksPerRow;
            var source = w.U64("copy_source");
            var step = w.U64("copy_step");
            if (!t.Paged)
            {
                // Padded: row kvStart + key, so consecutive copies are rowStep rows apart.
                var row = w.S32("copy_row");
                w.Op("add.s32", row, kvStart, first);
                w.Op("add.s32", row, row, laneKey);
                w.Op("cvt.s64.s32", source, row);
                w.Op("mul.lo.u64", source, source, rowStride);
                w.Op("add.s64", source, source, kBase);
                w.Op("mul.lo.u64", step, rowStride, rowStep);
            }
            for (int j = 0; j < copies; j++)
            {
                int jRow = j * rowStep;
                var destination = w.U32("copy_destination");
                w.Op("xor.b32", destination, laneChunk16, (jRow & 7) << 4);
                w.Op("add.u32", destination, destination, laneSlot);
                var valid = w.Pred("copy_valid");
                var bytes = w.U32("copy_bytes");
                w.Op("setp.gt.s32", valid, left, jRow);
                w.Op("selp.u32", bytes, 16, 0, valid);
                if (t.Paged)
                    PagedSource(source, first, jRow, valid);
                else if (j > 0)
                    w.Op("add.s64", source, source, step);
                var clamped = w.U64("copy_address");
                w.Op("selp.b64", clamped, source, kBase, valid);
                string keyTarget = "[" + destination + "+" + jRow * t.RowBytes + "]";
                string valueTarget = "[" + destination + "+" + (DecodeTraits.TileKeys + jRow) * t.RowBytes + "]";
                var valueAddress = w.U64("copy_value_address");
                w.Op("add.s64", valueAddress, clamped, valueDelta);
                w.Op("cp.async.cg.shared.global.L2::128B", keyTarget, "[" + clamped + "]", 16, bytes);
                w.Op("cp.async.cg.shared.global.L2::128B", valueTarget, "[" + valueAddress + "]", 16, bytes);
            }
            w.Label(skip);
            w.Op("cp.async.commit_group");
        }

        /// <summary>
        /// A paged cache's row of key <paramref name="first"/> + laneKey + <paramref name="jRow"/>: the block table's page
        /// times the page size, plus the key's place in its page (read only for a valid key).
        /// </summary>
        private void PagedSource(Reg source, Reg first, int jRow, Reg valid)
        {
            var key = w.U32("paged_key");
            var page = w.U32("paged_page");
            var within = w.U32("paged_within");
            var entry = w.U64("paged_entry");
            var row = w.U32("paged_row");
            w.Op("add.u32", key, first, laneKey);
            w.Op("add.u32", key, key, jRow);
            w.Op("div.u32", page, key, pageSize);
            w.Op("mul.lo.u32", within, page, pageSize);
            w.Op("sub.u32", within, key, within);
            w.Op("mul.wide.u32", entry, page, 4);
            w.Op("add.s64", entry, entry, blockTable);
            w.Op("mov.u32", row, 0);
            w.OpIf(valid, false, "ld.global.nc.u32", row, "[" + entry + "]");
            w.Op("mad.lo.u32", row, row, pageSize, within);
            w.Op("cvt.u64.u32", source, row);
            w.Op("mul.lo.u64", source, source, rowStride);
            w.Op("add.s64", source, source, kBase);
        }

        /// <summary>
        /// One tile: S = Q·Kᵀ (two n-tiles of 8 keys), the scale, the chunk's end, the online softmax, then O += P·V. Lane
        /// 4g + c holds S for rows g (s0, s1, s4, s5) and g + 8 (s2, s3, s6, s7), keys 2c, 2c + 1 (tile 0) and 8 + 2c, 9 + 2c
        /// (tile 1).
        /// </summary>
        private void ComputeTile(Reg index, Reg slot)
        {
            w.Comment("S = Q K^T: ldmatrix.x4 of keys 0-7 and 8-15, two 8-column chunks each k-step (PTX ISA 9.7.13.4.15).");
            for (int i = 0; i < 8; i++)
                w.Op("mov.f32", s[i], Zero);
            // ldmatrix lane l names row l mod 8 of matrix l / 8: keys (l mod 8) + 8 · (l / 16), chunk 2kk + (l / 8) mod 2.
            var matrix = w.U32("ld_matrix");
            var row = w.U32("ld_row");
            var keyRow = w.U32("ld_key");
            var keyBase = w.U32("ld_key_base");
            var keySwizzle = w.U32("ld_key_swizzle");
            w.Op("shr.u32", matrix, lane, 3);
            w.Op("and.b32", row, lane, 7);
            w.Op("shr.u32", keyRow, matrix, 1);
            w.Op("mad.lo.u32", keyRow, keyRow, 8, row);
            w.Op("mad.lo.u32", keyBase, keyRow, t.RowBytes, slot);
            w.Op("and.b32", keySwizzle, matrix, 1);
            w.Op("xor.b32", keySwizzle, keySwizzle, row);
            w.Op("shl.b32", keySwizzle, keySwizzle, 4);
            var address = w.U32("ld_address");
            for (int kk = 0; kk < t.HeadDim / 16; kk++)
            {
                int chunkBase = 2 * kk;
                w.Op("xor.b32", address, keySwizzle, (chunkBase & 7) << 4);
                w.Op("add.u32", address, address, keyBase);
                w.Op("ldmatrix.sync.aligned.m8n8.x4.shared.b16", b.List(), "[" + address + "+" + (chunkBase & ~7) * 16 + "]");
                Mma(s, 0, qa, 4 * kk, b[0], b[1]);
                Mma(s, 4, qa, 4 * kk, b[2], b[3]);
            }

            w.Comment("Scores to base 2; keys past the chunk's end (the last tile only) to -inf.");
            for (int i = 0; i < 8; i++)
                w.Op("mul.f32", s[i], s[i], scaleLog2);
            var interior = w.NewLabel("interior_tile");
            var first = w.S32("compute_first");
            var left = w.S32("compute_left");
            var isInterior = w.Pred("interior");
            w.Op("shl.b32", first, index, Log2(DecodeTraits.Warps));
            w.Op("add.s32", first, first, warp);
            w.Op("shl.b32", first, first, Log2(DecodeTraits.TileKeys));
            w.Op("add.s32", first, first, tileBegin);
            w.Op("sub.s32", left, keyEnd, first);
            w.Op("setp.ge.s32", isInterior, left, DecodeTraits.TileKeys);
            w.BranchIf(isInterior, false, interior);
            var c2 = w.U32("c2");
            w.Op("and.b32", c2, lane, 3);
            w.Op("shl.b32", c2, c2, 1);
            for (int i = 0; i < 8; i++)
            {
                // Element i's key: 2c + (i mod 2) + 8 · (i / 4).
                var key = w.S32("mask_key");
                var outside = w.Pred("mask_outside");
                w.Op("add.s32", key, c2, i % 2 + 8 * (i / 4));
                w.Op("setp.ge.s32", outside, key, left);
                w.OpIf(outside, false, "mov.f32", s[i], NegativeInfinity);
            }
            w.Label(interior);

            w.Comment("Online softmax: the tile's row max over the row's four lanes (max.NaN: a NaN score stays NaN), then P.");
            var alphas = new Reg[2];
            for (int half = 0; half < 2; half++)
            {
                int[] elements = { 2 * half, 2 * half + 1, 2 * half + 4, 2 * half + 5 };
                var tileMax = w.F32("tile_max" + half);
                w.Op("max.NaN.f32", tileMax, s[elements[0]], s[elements[1]]);
                w.Op("max.NaN.f32", tileMax, tileMax, s[elements[2]]);
                w.Op("max.NaN.f32", tileMax, tileMax, s[elements[3]]);
                foreach (int distance in new[] { 1, 2 })
                {
                    var other = w.F32("shuffled");
                    w.Op("shfl.sync.bfly.b32", other, tileMax, distance, "0x1f", "0xffffffff");
                    w.Op("max.NaN.f32", tileMax, tileMax, other);
                }
                var newMax = w.F32("new_max" + half);
                var used = w.F32("used_max" + half);
                var noKey = w.Pred("no_key" + half);
                var alpha = w.F32("alpha" + half);
                w.Op("max.NaN.f32", newMax, rowMax[half], tileMax);
                // A row that has seen no key yet keeps −∞ and subtracts 0 (no −∞ − −∞).
                w.Op("setp.eq.f32", noKey, newMax, NegativeInfinity);
                w.Op("selp.f32", used, Zero, newMax, noKey);
                w.Op("sub.f32", alpha, rowMax[half], used);
                w.Op("ex2.approx.ftz.f32", alpha, alpha);
                w.Op("mov.f32", rowMax[half], newMax);
                var tileSum = w.F32("tile_sum" + half);
                foreach (int i in elements)
                {
                    w.Op("sub.f32", s[i], s[i], used);
                    w.Op("ex2.approx.ftz.f32", s[i], s[i]);
                }
                w.Op("add.f32", tileSum, s[elements[0]], s[elements[1]]);
                w.Op("add.f32", tileSum, tileSum, s[elements[2]]);
                w.Op("add.f32", tileSum, tileSum, s[elements[3]]);
                w.Op("fma.rn.f32", rowSum[half], rowSum[half], alpha, tileSum);
                alphas[half] = alpha;
            }
            string pack = t.BFloat16 ? "cvt.rn.bf16x2.f32" : "cvt.rn.f16x2.f32";
            // P as the A fragment of one k-step (PTX ISA 9.7.13.4.8): accumulator tiles 0 and 1 side by side; cvt puts its
            // first source in the upper half.
            w.Op(pack, pa[0], s[1], s[0]);
            w.Op(pack, pa[1], s[3], s[2]);
            w.Op(pack, pa[2], s[5], s[4]);
            w.Op(pack, pa[3], s[7], s[6]);
            for (int i = 0; i < o.Count; i++)
                w.Op("mul.f32", o[i], o[i], alphas[i % 4 / 2]);

            w.Comment("O += P V: ldmatrix.x4.trans of keys 0-7 and 8-15, two 8-column chunks each (B fragments of V).");
            // Lane l names row l mod 8 of matrix l / 8: keys (l mod 8) + 8 · ((l / 8) mod 2), chunk 2np + l / 16.
            var valueBase = w.U32("ld_value_base");
            var valueSwizzle = w.U32("ld_value_swizzle");
            w.Op("and.b32", keyRow, matrix, 1);
            w.Op("mad.lo.u32", keyRow, keyRow, 8, row);
            w.Op("mad.lo.u32", valueBase, keyRow, t.RowBytes, slot);
            w.Op("add.u32", valueBase, valueBase, DecodeTraits.TileKeys * t.RowBytes);
            w.Op("shr.u32", valueSwizzle, matrix, 1);
            w.Op("xor.b32", valueSwizzle, valueSwizzle, row);
            w.Op("shl.b32", valueSwizzle, valueSwizzle, 4);
            for (int np = 0; np < t.HeadDim / 16; np++)
            {
                int chunkBase = 2 * np;
                w.Op("xor.b32", address, valueSwizzle, (chunkBase & 7) << 4);
                w.Op("add.u32", address, address, valueBase);
                w.Op("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16", b.List(), "[" + address + "+" + (chunkBase & ~7) * 16 + "]");
                Mma(o, 8 * np, pa, 0, b[0], b[1]);
                Mma(o, 8 * np + 4, pa, 0, b[2], b[3]);
            }
        }

        /// <summary>D += A·B, one m16n8k16 (PTX ISA 9.7.13.4.8) into four accumulators of <paramref name="d"/>.</summary>
        private void Mma(RegArray d, int at, RegArray a, int aAt, Reg b0, Reg b1)
        {
            string shape = "mma.sync.aligned.m16n8k16.row.col.f32." + t.Element + "." + t.Element + ".f32";
            string accumulators = d.List(at, 4);
            w.Op(shape, accumulators, a.List(aAt, 4), "{" + b0 + ", " + b1 + "}", accumulators);
        }

        // ---------------------------------------------------------------- the merge and the epilogue

        /// <summary>
        /// The warps' states into shared memory (O rows, then each row's max and sum), then each thread merges pairs of
        /// columns of the CTA's rows: m = max of the warps' maxima, L = Σ l_w 2^(m_w − m), O = Σ O_w 2^(m_w − m) / L, and
        /// LSE = (m + log2 L) · ln 2; a row no warp saw gets O = 0 and LSE = −∞.
        /// </summary>
        private void Merge()
        {
            w.Comment("Each row's sum over its four lanes.");
            foreach (var l in rowSum)
            {
                foreach (int distance in new[] { 1, 2 })
                {
                    var other = w.F32("shuffled");
                    w.Op("shfl.sync.bfly.b32", other, l, distance, "0x1f", "0xffffffff");
                    w.Op("add.f32", l, l, other);
                }
            }
            w.Comment("The ring is drained; the warps' O, max and sum go to shared memory over it.");
            w.Op("bar.sync", 0);
            int oBytes = DecodeTraits.Warps * DecodeTraits.MaxRows * t.HeadDim * 4;
            var g = w.U32("g");
            var c = w.U32("c");
            var at = w.U32("merge_at");
            for (int half = 0; half < 2; half++)
            {
                // Warp w's row r at (w · 16 + r) · HeadDim floats; this lane's columns 8n + 2c, 8n + 2c + 1.
                var rowIndex = w.U32("merge_row");
                w.Op("mad.lo.u32", rowIndex, warp, DecodeTraits.MaxRows, g);
                w.Op("add.u32", rowIndex, rowIndex, 8 * half);
                w.Op("mul.lo.u32", at, rowIndex, t.HeadDim * 4);
                w.Op("mad.lo.u32", at, c, 8, at);
                w.Op("add.u32", at, at, smemBase);
                for (int n = 0; n < t.HeadDim / 8; n++)
                    w.Op("st.shared.v2.f32", "[" + at + "+" + 32 * n + "]", "{" + o[4 * n + 2 * half] + ", " + o[4 * n + 2 * half + 1] + "}");
                var writer = w.Pred("merge_writer");
                var stat = w.U32("merge_stat");
                w.Op("setp.eq.u32", writer, c, 0);
                w.Op("mad.lo.u32", stat, rowIndex, 8, smemBase);
                w.OpIf(writer, false, "st.shared.v2.f32", "[" + stat + "+" + oBytes + "]", "{" + rowMax[half] + ", " + rowSum[half] + "}");
            }
            w.Op("bar.sync", 0);

            w.Comment("Thread i merges column pairs i, i + 128, ... of rows * HeadDim / 2.");
            var pair = w.U32("pair");
            var pairs = w.U32("pairs");
            var tid = w.U32("thread");
            w.Op("mov.u32", pair, tid);
            w.Op("mul.lo.u32", pairs, rows, t.HeadDim / 2);
            var loop = w.NewLabel("merge_loop");
            var done = w.NewLabel("merge_done");
            var over = w.Pred("merge_over");
            var chunks = w.U32("chunks");
            var qRows = w.U32("q_rows");
            var single = w.Pred("single_chunk");
            w.Op("ld.param.u32", qRows, "[q_rows]");
            w.Op("setp.eq.u32", single, chunks, 1);
            w.Label(loop);
            w.Op("setp.ge.u32", over, pair, pairs);
            w.BranchIf(over, false, done);
            var r = w.U32("out_row");
            var column = w.U32("out_column");
            w.Op("shr.u32", r, pair, Log2(t.HeadDim / 2));
            w.Op("and.b32", column, pair, t.HeadDim / 2 - 1);
            w.Op("shl.b32", column, column, 1);
            var maxima = new Reg[DecodeTraits.Warps];
            var sums = new Reg[DecodeTraits.Warps];
            var best = w.F32("merged_max");
            for (int v = 0; v < DecodeTraits.Warps; v++)
            {
                maxima[v] = w.F32("warp_max" + v);
                sums[v] = w.F32("warp_sum" + v);
                var stat = w.U32("stat_at");
                w.Op("add.u32", stat, r, v * DecodeTraits.MaxRows);
                w.Op("mad.lo.u32", stat, stat, 8, smemBase);
                w.Op("ld.shared.v2.f32", "{" + maxima[v] + ", " + sums[v] + "}", "[" + stat + "+" + oBytes + "]");
                if (v == 0)
                    w.Op("mov.f32", best, maxima[v]);
                else
                    w.Op("max.NaN.f32", best, best, maxima[v]);
            }
            var noKey = w.Pred("merged_no_key");
            var used = w.F32("merged_used");
            w.Op("setp.eq.f32", noKey, best, NegativeInfinity);
            w.Op("selp.f32", used, Zero, best, noKey);
            var total = w.F32("merged_sum");
            var o0 = w.F32("merged_o0");
            var o1 = w.F32("merged_o1");
            w.Op("mov.f32", total, Zero);
            w.Op("mov.f32", o0, Zero);
            w.Op("mov.f32", o1, Zero);
            for (int v = 0; v < DecodeTraits.Warps; v++)
            {
                var weight = w.F32("weight");
                var x0 = w.F32("part0");
                var x1 = w.F32("part1");
                var rowAt = w.U32("part_at");
                w.Op("sub.f32", weight, maxima[v], used);
                w.Op("ex2.approx.ftz.f32", weight, weight);
                w.Op("fma.rn.f32", total, sums[v], weight, total);
                w.Op("add.u32", rowAt, r, v * DecodeTraits.MaxRows);
                w.Op("mul.lo.u32", rowAt, rowAt, t.HeadDim);
                w.Op("add.u32", rowAt, rowAt, column);
                w.Op("mad.lo.u32", rowAt, rowAt, 4, smemBase);
                w.Op("ld.shared.v2.f32", "{" + x0 + ", " + x1 + "}", "[" + rowAt + "]");
                w.Op("fma.rn.f32", o0, x0, weight, o0);
                w.Op("fma.rn.f32", o1, x1, weight, o1);
            }
            // Seen: L > 0, or NaN (a NaN stays NaN); otherwise O = 0 and LSE = −∞.
            var seen = w.Pred("seen");
            var inverse = w.F32("inverse");
            var lse = w.F32("lse");
            w.Op("setp.gtu.f32", seen, total, Zero);
            w.Op("rcp.rn.f32", inverse, total);
            w.Op("selp.f32", inverse, inverse, Zero, seen);
            w.Op("mul.f32", o0, o0, inverse);
            w.Op("mul.f32", o1, o1, inverse);
            w.Op("lg2.approx.f32", lse, total);
            w.Op("add.f32", lse, lse, best);
            w.Op("mul.f32", lse, lse, PtxWriter.Float(0.6931471805599453f));
            w.Op("selp.f32", lse, lse, NegativeInfinity, seen);

            // Row r: query qStart + r / group, query head head · group + r mod group.
            var query = w.U32("out_query");
            var queryHead = w.U32("out_head");
            var index = w.U32("out_index");
            w.Op("div.u32", query, r, group);
            w.Op("rem.u32", queryHead, r, group);
            w.Op("add.u32", query, query, qStart);
            w.Op("mad.lo.u32", queryHead, head, group, queryHead);
            var lseWriter = w.Pred("lse_writer");
            w.Op("setp.eq.u32", lseWriter, column, 0);
            var partial = w.NewLabel("partial_out");
            var next = w.NewLabel("merge_next");
            w.BranchIf(single, true, partial);
            {
                w.Comment("One chunk: O in the element type and LSE [Hq, QRows].");
                var outAddress = w.U64("out_address");
                var pointer = w.U64("out_pointer");
                var packed = w.B32("out_packed");
                w.Op("mad.lo.u32", index, query, hq, queryHead);
                w.Op("mul.wide.u32", outAddress, index, t.HeadDim);
                w.Op("cvt.u64.u32", pointer, column);
                w.Op("add.s64", outAddress, outAddress, pointer);
                w.Op("shl.b64", outAddress, outAddress, 1);
                w.Op("ld.param.u64", pointer, "[o]");
                w.Op("add.s64", outAddress, outAddress, pointer);
                w.Op(t.BFloat16 ? "cvt.rn.bf16x2.f32" : "cvt.rn.f16x2.f32", packed, o1, o0);
                w.Op("st.global.b32", "[" + outAddress + "]", packed);
                var lseAddress = w.U64("lse_address");
                w.Op("mad.lo.u32", index, queryHead, qRows, query);
                w.Op("mul.wide.u32", lseAddress, index, 4);
                w.Op("ld.param.u64", pointer, "[lse]");
                w.Op("add.s64", lseAddress, lseAddress, pointer);
                w.OpIf(lseWriter, false, "st.global.f32", "[" + lseAddress + "]", lse);
                w.Branch(next);
            }
            w.Label(partial);
            {
                w.Comment("Several chunks: fp32 O [Chunks, QRows, Hq, HeadDim] and LSE [Chunks, Hq, QRows] for the merge kernel.");
                var outAddress = w.U64("partial_address");
                var pointer = w.U64("partial_pointer");
                w.Op("mad.lo.u32", index, chunk, qRows, query);
                w.Op("mad.lo.u32", index, index, hq, queryHead);
                w.Op("mul.wide.u32", outAddress, index, t.HeadDim);
                w.Op("cvt.u64.u32", pointer, column);
                w.Op("add.s64", outAddress, outAddress, pointer);
                w.Op("shl.b64", outAddress, outAddress, 2);
                w.Op("ld.param.u64", pointer, "[partial_o]");
                w.Op("add.s64", outAddress, outAddress, pointer);
                w.Op("st.global.v2.f32", "[" + outAddress + "]", "{" + o0 + ", " + o1 + "}");
                var lseAddress = w.U64("partial_lse_address");
                w.Op("mad.lo.u32", index, chunk, hq, queryHead);
                w.Op("mad.lo.u32", index, index, qRows, query);
                w.Op("mul.wide.u32", lseAddress, index, 4);
                w.Op("ld.param.u64", pointer, "[partial_lse]");
                w.Op("add.s64", lseAddress, lseAddress, pointer);
                w.OpIf(lseWriter, false, "st.global.f32", "[" + lseAddress + "]", lse);
            }
            w.Label(next);
            w.Op("add.u32", pair, pair, DecodeTraits.Threads);
            w.Branch(loop);
            w.Label(done);
            w.Op("ret");
        }

        private static int Log2(int value) => System.Numerics.BitOperations.Log2((uint)value);
    }
}
