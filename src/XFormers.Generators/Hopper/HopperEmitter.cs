using System.Collections.Generic;
using System.Linq;
using XFormers.Generators.Models;
using XFormers.Generators.Mods;

namespace XFormers.Generators.Hopper
{
    /// <summary>
    /// The passes of a kernel over its tile (docs/RELIABILITY.md, "Non-finite values on the tensor-core kernels"). Every CTA
    /// runs <see cref="Fast"/>; its epilogue notes whether a NaN came out. Only a CTA that saw one (a vote of all its
    /// threads) goes on: it computes its outputs again with <see cref="Sanitize"/>, where the non-finite elements of each
    /// staged operand tile whose product mixes rows (V; Q and dO; K) are zeroed, then <see cref="Poison"/> writes NaN
    /// into exactly the outputs whose rows give a non-zero weight to such an element (the same product with 0/1
    /// indicators: the weight's nonzero-ness times the element's non-finiteness). Clean inputs pay for the vote alone.
    /// </summary>
    internal enum HopperMode
    {
        Fast,
        Sanitize,
        Poison,
    }

    /// <summary>
    /// What the sm_90a kernels share: the PTX idioms of the TMA/mbarrier pipeline and of wgmma (barriers, descriptors, tensor
    /// copies, the ring's stage and phase), read against one <see cref="HopperPlan"/>'s shared-memory layout.
    /// </summary>
    internal abstract class HopperEmitter
    {
        protected const string NegativeInfinity = "0fFF800000";
        protected const string Zero = "0f00000000";
        protected const float Log2E = 1.4426950408889634f;
        protected const float Ln2 = 0.6931471805599453f;

        protected readonly HopperPlan plan;
        protected readonly PtxWriter w = new();

        /// <summary>Shared memory's base address, the batch index (every TMA copy names it) and mbarrier arrival state.</summary>
        protected Reg smem, b, state;

        /// <summary>The thread index; a consumer's warpgroup (0-based among consumers), 2 · (lane mod 4), scale and c = the exp2 factor.</summary>
        protected Reg tid, warpGroup, quad2, scale, cLog2;

        /// <summary>A consumer thread's two rows' visible column ranges [lo, hi), and its warp's tightest bounds.</summary>
        protected readonly Reg[] lo = new Reg[2], hi = new Reg[2];
        protected Reg warpMaxLo, warpMinHi;

        /// <summary>A local mask's window (the <c>window</c> parameter), once <see cref="LoadWindow"/> has read it.</summary>
        protected Reg window;

        /// <summary>The variant's mods (<see cref="HopperPlan.ScoreMod"/>, <see cref="HopperPlan.MaskMod"/>), or null.</summary>
        protected readonly ModsModel? mods;

        /// <summary>The pass being written (<see cref="Kernel"/> writes each role once per pass of <see cref="Modes"/>).</summary>
        protected HopperMode mode;

        /// <summary>Set by the fast pass's stores where a value is NaN; its vote decides whether the CTA goes on.</summary>
        protected Reg nanSeen;

        /// <summary>Where a role's body ends its pass (the join of <see cref="Kernel"/>).</summary>
        private string roleEnd = "";

        /// <summary>Whether <see cref="InitBarriers"/> writes the barriers again for a later pass (invalidating them first).</summary>
        private bool again;

        protected HopperEmitter(HopperPlan plan, ModsModel? mods = null)
        {
            this.plan = plan;
            this.mods = mods;
        }

        /// <summary>
        /// The kernel's passes, in order: <see cref="HopperMode.Fast"/>, <see cref="HopperMode.Sanitize"/>, and
        /// <see cref="HopperMode.Poison"/> where an output's product has a non-finite operand that must reach exactly the
        /// rows that weigh it (the forward's O += P V, the dK/dV pass's dV += Pᵀ dO).
        /// </summary>
        protected abstract HopperMode[] Modes { get; }

        /// <summary>
        /// The parameters a variant with mods adds, after an entry point's own: the mods' arguments (<see cref="ModParamLayout"/>),
        /// and the launch's block list. Its rows list, for one CTA, the tiles it visits: their count, then each tile's index
        /// times 2, plus 1 where no score of it is masked (rows of <c>block_cols</c> + 1 ints; the row of (b, head, block) is
        /// b · rows_b + head · rows_h + block). The forward and the dQ pass index rows by query tile and list key tiles; the
        /// dK/dV pass indexes them by key tile and lists (query head within the group, query tile) pairs.
        /// </summary>
        private static readonly string[] ModParameters =
        {
            ModPtxWriter.ParamDeclaration("mod_args"),
            ".param .u64 block_list",
            ".param .u32 block_rows_b",
            ".param .u32 block_rows_h",
            ".param .u32 block_cols",
        };

        /// <summary>A variant with mods adds <see cref="ModParameters"/> to every entry point, before a local mask's window.</summary>
        protected static IEnumerable<string> WithMods(HopperPlan plan, IEnumerable<string> parameters) =>
            plan.ScoreMod || plan.MaskMod ? parameters.Concat(ModParameters) : parameters;

        /// <summary>
        /// The address of this CTA's row of the block list (row b · rows_b + <paramref name="head"/> · rows_h +
        /// <paramref name="block"/>). The producer computes it again after <c>setmaxnreg.dec</c> rather than keep a 64-bit
        /// value across it.
        /// </summary>
        protected Reg BlockListRowPointer(Reg head, Reg block, string name)
        {
            var rowsB = w.Temp("u32");
            var rowsH = w.Temp("u32");
            var cols = w.Temp("u32");
            w.Op("ld.param.u32", rowsB, "[block_rows_b]");
            w.Op("ld.param.u32", rowsH, "[block_rows_h]");
            w.Op("ld.param.u32", cols, "[block_cols]");
            var rowIndex = w.Temp("u32");
            w.Op("mul.lo.u32", rowIndex, b, rowsB);
            w.Op("mad.lo.u32", rowIndex, head, rowsH, rowIndex);
            w.Op("add.u32", rowIndex, rowIndex, block);
            var width = w.Temp("u32");
            w.Op("add.u32", width, cols, 1);
            var offset = w.Temp("u64");
            w.Op("mul.wide.u32", offset, rowIndex, width);
            w.Op("shl.b64", offset, offset, 2);
            var pointer = w.U64(name);
            w.Op("ld.param.u64", pointer, "[block_list]");
            w.Op("add.s64", pointer, pointer, offset);
            return pointer;
        }

        /// <summary>
        /// Entry <paramref name="tile"/> of a CTA's block-list row: the listed index (the entry shifted right once) into
        /// <paramref name="index"/>, and whether the tile is fully visible (its low bit).
        /// </summary>
        protected Reg BlockListIndex(Reg tile, Reg row, Reg index, string prefix)
        {
            var address = w.Temp("u64");
            w.Op("mul.wide.s32", address, tile, 4);
            w.Op("add.s64", address, address, row);
            w.Op("ld.global.nc.s32", index, $"[{address}+4]");
            var full = w.Pred(prefix + "_full_tile");
            var bit = w.Temp("b32");
            w.Op("and.b32", bit, index, 1);
            w.Op("setp.ne.b32", full, bit, 0);
            w.Op("shr.s32", index, index, 1);
            return full;
        }

        /// <summary>A local mask's module takes its window last: <c>.param .u32 window</c>.</summary>
        protected static IEnumerable<string> WithWindow(HopperPlan plan, IEnumerable<string> parameters) =>
            plan.Local ? parameters.Concat(new[] { ".param .u32 window" }) : parameters;

        /// <summary>Reads the window of a local mask (nothing for the other masks).</summary>
        protected void LoadWindow()
        {
            if (!plan.Local)
                return;
            window = w.S32("window");
            w.Op("ld.param.u32", window, "[window]");
        }

        /// <summary>
        /// A packed CTA's span: the segments of its first and last rows (segments[firstRow], segments[lastRow]) and the other
        /// side's range they cover, [starts[first], starts[last + 1]), into <paramref name="begin"/> and <paramref name="end"/>.
        /// </summary>
        protected (Reg First, Reg Last, Reg Starts) SegmentSpan(string segments, string starts, Reg firstRow, Reg lastRow, Reg begin, Reg end)
        {
            var segmentIds = LoadPointer(segments);
            var startArray = LoadPointer(starts);
            var first = w.S32("first_segment");
            var last = w.S32("last_segment");
            LoadInt(first, segmentIds, firstRow, 0);
            LoadInt(last, segmentIds, lastRow, 0);
            LoadInt(begin, startArray, first, 0);
            LoadInt(end, startArray, last, 1);
            return (first, last, startArray);
        }

        /// <summary>
        /// A packed row's segment, segments[index] (index 0 stands in for an invalid row), and the segment's range of the other
        /// side, [starts[s], starts[s + 1]), into row r's [lo, hi).
        /// </summary>
        protected Reg SegmentRange(int r, Reg index, Reg valid, Reg segments, Reg starts)
        {
            var segment = w.S32("segment" + r);
            var safeIndex = w.Temp("s32");
            w.Op("selp.s32", safeIndex, index, 0, valid);
            LoadInt(segment, segments, safeIndex, 0);
            LoadInt(lo[r], starts, segment, 0);
            LoadInt(hi[r], starts, segment, 1);
            return segment;
        }

        /// <summary>
        /// Segment s's causal diagonal as j − i (query i sees keys j with j − i at most this): KvStart[s] − QStart[s], or at
        /// the segment's bottom-right corner KvStart[s + 1] − QStart[s + 1].
        /// </summary>
        protected void SegmentDiagonal(Reg destination, Reg segment, Reg qStart, Reg kvStart)
        {
            int plus = plan.FromBottomRight ? 1 : 0;
            var start = w.Temp("s32");
            LoadInt(destination, kvStart, segment, plus);
            LoadInt(start, qStart, segment, plus);
            w.Op("sub.s32", destination, destination, start);
        }

        /// <summary>The module's first lines: where it came from, its tiles, the PTX version and target.</summary>
        protected static string Header(string what, string summary, string tiles) =>
            "// Generated by XFormers.Generators: " + what + " of " + PtxWriter.Ascii(summary) + "\n" +
            tiles +
            ".version 8.0\n.target sm_90a\n.address_size 64\n\n" +
            ".extern .shared .align 1024 .b8 smem[];\n\n";

        protected static string Tiles(HopperPlan plan) =>
            "// Tiles: BlockM " + plan.BlockM + ", BlockN " + plan.BlockN + ", " + plan.Stages + " K/V stages, " +
            plan.ConsumerWarpGroups + " consumer warpgroups; " + plan.SharedBytes + " bytes of dynamic shared memory.\n";

        /// <summary>One entry point: its parameters, launch bounds and the body written so far.</summary>
        protected string Entry(string name, IEnumerable<string> parameters) =>
            ".visible .entry " + name + "(\n" +
            string.Join(",\n", parameters.Select(p => "    " + p)) + ")\n" +
            ".maxntid " + plan.Threads + ", 1, 1\n.minnctapersm 1\n{\n" +
            w.Body() +
            "}\n";

        /// <summary>
        /// The accumulator element i of a thread (PTX ISA 9.7.15.5.1, "Matrix D" of m64nNk16): row half (i mod 4) / 2 of the
        /// thread's two rows, column 8 · (i / 4) + 2 · (lane mod 4) + i mod 2. Returns the row half and the column offset
        /// from the thread's first column.
        /// </summary>
        protected static (int RowHalf, int Column) Element(int i) => (i % 4 / 2, 8 * (i / 4) + i % 2);

        /// <summary>
        /// On a tile that cuts some row's visible range [lo, hi) (the warp's bounds say so), every element of
        /// <paramref name="target"/> outside its row's range becomes <paramref name="value"/>; interior tiles branch over
        /// this (FlashAttention's masking steps, decided per warp). The forward's rows are queries and its columns keys; the
        /// dK/dV pass's rows are keys and its columns the queries that see them.
        /// </summary>
        protected void MaskBoundaryTile(string comment, Reg first, Reg columnBase, RegArray target, string value)
        {
            w.Comment(comment);
            var interior = w.NewLabel("interior_tile");
            var needsMask = w.Pred("needs_mask");
            var tileEnd = w.Temp("s32");
            w.Op("add.s32", tileEnd, first, plan.BlockN);
            w.Op("setp.lt.s32", needsMask, first, warpMaxLo);
            w.Op("setp.gt.or.s32", needsMask, tileEnd, warpMinHi, needsMask);
            w.BranchIf(needsMask, true, interior);
            var relLo = new Reg[2];
            var relHi = new Reg[2];
            for (int r = 0; r < 2; r++)
            {
                relLo[r] = w.S32("rel_lo" + r);
                relHi[r] = w.S32("rel_hi" + r);
                w.Op("sub.s32", relLo[r], lo[r], columnBase);
                w.Op("sub.s32", relHi[r], hi[r], columnBase);
            }
            var hidden = w.Pred("hidden");
            for (int i = 0; i < target.Count; i++)
            {
                var (half, column) = Element(i);
                w.Op("setp.gt.s32", hidden, relLo[half], column);
                w.Op("setp.le.or.s32", hidden, relHi[half], column, hidden);
                w.Op("selp.f32", target[i], value, target[i], hidden);
            }
            w.Label(interior);
        }

        /// <summary>(float)(kv − q) at the tile's first column for each of the thread's two rows, where a mod reads that distance.</summary>
        protected readonly Reg[] modDistance = new Reg[2];

        /// <summary>
        /// Where a mod casts kv − q to float (<see cref="ModPtxWriter.UsesDistance"/>): each of the thread's rows' distance
        /// at the tile's first column, converted once (queries are rows in the forward and the dQ pass: column base − shift −
        /// q; keys in the dK/dV pass: kv + shift − column base). A score's distance is then that plus or minus its column
        /// (<see cref="ScoreDistance"/>).
        /// </summary>
        protected void ModDistances(Reg columnBase, Reg[] rowPosition, Reg[] rowShift, bool rowsAreKeys)
        {
            if (!ModPtxWriter.UsesDistance(mods!))
                return;
            w.Comment(rowsAreKeys
                ? "(float)(kv - q) at the tile's first query, a key row: a score's distance subtracts its column (exact below 2^24)."
                : "(float)(kv - q) at the tile's first column, a row: a score's distance adds its column (exact below 2^24).");
            for (int r = 0; r < 2; r++)
            {
                var distance = w.Temp("s32");
                if (rowsAreKeys)
                {
                    w.Op("add.s32", distance, rowPosition[r], rowShift[r]);
                    w.Op("sub.s32", distance, distance, columnBase);
                }
                else
                {
                    w.Op("sub.s32", distance, columnBase, rowShift[r]);
                    w.Op("sub.s32", distance, distance, rowPosition[r]);
                }
                modDistance[r] = w.Temp("f32");
                w.Op("cvt.rn.f32.s32", modDistance[r], distance);
            }
        }

        /// <summary>The distance of the score in <paramref name="column"/> of row half <paramref name="half"/>, or no register where none was formed.</summary>
        protected Reg ScoreDistance(int half, int column, bool rowsAreKeys)
        {
            if (modDistance[half].Name is null)
                return default;
            var distance = w.Temp("f32");
            w.Op("add.rn.f32", distance, modDistance[half], PtxWriter.Float(rowsAreKeys ? -column : column));
            return distance;
        }

        /// <summary>
        /// What the mods see of a consumer thread's row r (a query in the forward and the dQ pass, a key in the dK/dV pass):
        /// batch b and the row's index, or, packed, its segment (segments[index]; index 0 stands in for an invalid row), its
        /// index within the segment (less ownStarts[segment]) and the other side's shift (otherStarts[segment]), subtracted
        /// from each column's index.
        /// </summary>
        protected (Reg Batch, Reg Position, Reg Shift) ModPositions(
            int r, Reg index, Reg valid, Reg segments, Reg ownStarts, Reg otherStarts, string positionName, string shiftName)
        {
            var batch = w.S32("mod_batch" + r);
            var position = w.S32(positionName + r);
            var shift = w.S32(shiftName + r);
            if (plan.BlockDiagonal)
            {
                var safeIndex = w.Temp("s32");
                w.Op("selp.s32", safeIndex, index, 0, valid);
                LoadInt(batch, segments, safeIndex, 0);
                var start = w.Temp("s32");
                LoadInt(start, ownStarts, batch, 0);
                w.Op("sub.s32", position, index, start);
                LoadInt(shift, otherStarts, batch, 0);
            }
            else
            {
                w.Op("mov.b32", batch, b);
                w.Op("mov.s32", position, index);
                w.Op("mov.s32", shift, 0);
            }
            return (batch, position, shift);
        }

        /// <summary>Natural units for a score mod without a bias: score = scale · qk.</summary>
        protected void ScaleScores(RegArray s)
        {
            w.Comment("Natural units for the score mod: score = scale * qk.");
            for (int i = 0; i < s.Count; i++)
                w.Op("mul.f32", s[i], s[i], scale);
        }

        /// <summary>
        /// With a mask mod, on a tile the block list marks partial: dS becomes 0 wherever P is 0, so that dS = P ∘ (…) does
        /// not carry a NaN or Inf of dP through a hidden score (0 · NaN); where P merely underflowed, dS was 0 already.
        /// </summary>
        protected void ZeroWhereHidden(RegArray ds, RegArray p, Reg fullTile)
        {
            w.Comment("Mask mod: dS = 0 wherever P = 0 on a partial tile (a NaN or Inf of dP must not pass a hidden score).");
            var skip = w.NewLabel("full_tile");
            w.BranchIf(fullTile, false, skip);
            var hidden = w.Pred("mod_hidden");
            for (int i = 0; i < ds.Count; i++)
            {
                w.Op("setp.eq.f32", hidden, p[i], Zero);
                w.Op("selp.f32", ds[i], Zero, ds[i], hidden);
            }
            w.Label(skip);
        }

        /// <summary>
        /// A consumer thread's place in the m64nNk16 fragments (its warpgroup, warp within it, lane row and 2 · lane mod 4) and
        /// the softmax's factors: the scale, and c = log2(e) with a bias (the score is then scale · qk + bias) or
        /// scale · log2(e) without.
        /// </summary>
        protected (Reg Warp, Reg LaneRow) ConsumerLanes()
        {
            var ct = w.U32("consumer_tid");
            warpGroup = w.U32("consumer_warp_group");
            var warp = w.U32("warp");
            var lane = w.U32("lane");
            w.Op("sub.u32", ct, tid, 128);
            w.Op("shr.u32", warpGroup, ct, 7);
            w.Op("shr.u32", warp, ct, 5);
            w.Op("and.b32", warp, warp, 3);
            w.Op("and.b32", lane, tid, 31);
            quad2 = w.S32("quad2");
            w.Op("and.b32", quad2, lane, 3);
            w.Op("shl.b32", quad2, quad2, 1);
            var laneRow = w.U32("lane_row");
            w.Op("shr.u32", laneRow, lane, 2);

            scale = w.F32("scale");
            cLog2 = w.F32("c_log2");
            w.Op("ld.param.f32", scale, "[scale]");
            if (plan.NaturalScores)
                w.Op("mov.f32", cLog2, PtxWriter.Float(Log2E));
            else
                w.Op("ld.param.f32", cLog2, "[scale_log2]");
            return (warp, laneRow);
        }

        /// <summary>
        /// score = scale · qk + bias for a tensor bias: each thread loads its own 16-bit elements, at
        /// <paramref name="tileRow"/>[row half] + column · <paramref name="columnStride2"/> bytes, where the column is below
        /// <paramref name="limit"/> and the row <paramref name="valid"/> (0 elsewhere: the mask drops those entries).
        /// </summary>
        protected void AddTensorBias(RegArray s, Reg limit, Reg[] valid, Reg columnStride2, Reg[] tileRow)
        {
            var raw = w.Scalar("b16", "bias_raw");
            var zero16 = w.Scalar("b16", "bias_zero16");
            var wide = w.B32("bias_wide");
            var value = w.F32("bias_value");
            var inRange = w.Pred("bias_in_range");
            var address = w.U64("bias_address");
            w.Op("mov.b16", zero16, 0);
            for (int i = 0; i < s.Count; i++)
            {
                var (half, column) = Element(i);
                w.Op("setp.gt.and.s32", inRange, limit, column, valid[half]);
                w.Op("mad.lo.s64", address, columnStride2, column, tileRow[half]);
                w.Op("mov.b16", raw, zero16);
                w.OpIf(inRange, false, "ld.global.nc.b16", raw, $"[{address}]");
                if (plan.Element == "bf16")
                {
                    w.Op("mov.b32", wide, $"{{{zero16}, {raw}}}");
                    w.Op("mov.b32", value, wide);
                }
                else
                {
                    w.Op("cvt.f32.f16", value, raw);
                }
                w.Op("fma.rn.f32", s[i], s[i], scale, value);
            }
        }

        /// <summary>The warp's tightest bounds over its threads' rows: max lo and min hi, by butterfly shuffles.</summary>
        protected void WarpBounds(string comment)
        {
            w.Comment(comment);
            warpMaxLo = w.S32("warp_max_lo");
            warpMinHi = w.S32("warp_min_hi");
            w.Op("max.s32", warpMaxLo, lo[0], lo[1]);
            w.Op("min.s32", warpMinHi, hi[0], hi[1]);
            foreach (int distance in new[] { 16, 8, 4, 2, 1 })
            {
                var other = w.Temp("s32");
                w.Op("shfl.sync.bfly.b32", other, warpMaxLo, distance, "0x1f", "0xffffffff");
                w.Op("max.s32", warpMaxLo, warpMaxLo, other);
                var other2 = w.Temp("s32");
                w.Op("shfl.sync.bfly.b32", other2, warpMinHi, distance, "0x1f", "0xffffffff");
                w.Op("min.s32", warpMinHi, warpMinHi, other2);
            }
        }

        /// <summary>The wgmma scale-d predicates (accumulate, overwrite) and a zero register (also the first parity waited on).</summary>
        protected (Reg Accumulate, Reg Overwrite, Reg Zero) ScalePredicates()
        {
            var accumulate = w.Pred("accumulate");
            var overwrite = w.Pred("overwrite");
            var zero = w.U32("zero");
            w.Op("mov.u32", zero, 0);
            w.Op("setp.eq.u32", accumulate, zero, 0);
            w.Op("setp.ne.u32", overwrite, zero, 0);
            return (accumulate, overwrite, zero);
        }

        // ---------------------------------------------------------------- roles

        /// <summary>
        /// The kernel: every thread's setup, then warpgroup 0 takes the producer's branch and the others the consumers'. Each
        /// role runs its body once per pass of <see cref="Modes"/>: after the fast pass, every thread of the CTA votes on
        /// <see cref="nanSeen"/> (<c>barrier.red.or</c>, named barrier 2; the non-aligned form, as the two roles reach it from
        /// their own code) and the CTA returns unless a NaN came out; before each later pass, the setup runs again in both
        /// roles and thread 0 writes the mbarriers anew. A later pass leaves the registers as the fast pass set them
        /// (<c>setmaxnreg</c> runs in the fast pass only).
        /// </summary>
        protected void Kernel()
        {
            Setup();
            nanSeen = w.Pred("nan_seen");
            w.Op("setp.ne.u32", nanSeen, tid, tid);
            var consumer = w.NewLabel("consumer");
            var isConsumer = w.Pred("is_consumer");
            var role = w.U32("warp_group");
            w.Op("shr.u32", role, tid, 7);
            w.Op("setp.ne.u32", isConsumer, role, 0);
            w.BranchIf(isConsumer, false, consumer);
            Passes(Producer);
            w.Label(consumer);
            Passes(Consumer);
        }

        private void Passes(System.Action body)
        {
            var modes = Modes;
            for (int i = 0; i < modes.Length; i++)
            {
                mode = modes[i];
                if (i > 0)
                {
                    w.Comment("Pass " + (i + 1) + " of this tile (" + mode + "): the setup again, the mbarriers written anew.");
                    again = true;
                    Setup();
                    again = false;
                }
                roleEnd = w.NewLabel("pass_end");
                body();
                w.Label(roleEnd);
                if (i == modes.Length - 1)
                    break;
                if (i == 0)
                {
                    w.Comment("Did a NaN come out of this tile? Only then compute it again (a vote of every thread).");
                    var any = w.Pred("nan_in_tile");
                    var redo = w.NewLabel("redo");
                    w.Op("barrier.red.or.pred", any, 2, plan.Threads, nanSeen);
                    w.BranchIf(any, false, redo);
                    w.Op("ret");
                    w.Label(redo);
                }
                else
                {
                    w.Op("barrier.sync", 2, plan.Threads);
                }
            }
            w.Op("ret");
        }

        /// <summary>The end of a role's body in the current pass (instead of <c>ret</c>).</summary>
        protected void EndRole() => w.Branch(roleEnd);

        /// <summary>Coordinates, sizes and the CTA's range of streamed tiles; ends with <see cref="InitBarriers"/>.</summary>
        protected abstract void Setup();

        protected abstract void Producer();

        protected abstract void Consumer();

        // ---------------------------------------------------------------- barriers

        /// <summary>
        /// Shared memory's base and the mbarriers, initialized by thread 0 and fenced before the CTA's first barrier: the
        /// resident tiles' barrier (one arrival), then per stage the first ring's full barrier (<paramref name="firstFullArrivals"/>:
        /// its TMA thread, and in the dK/dV pass the 32 lanes that write the row vectors), its empty barrier, the second
        /// ring's full and empty barriers (empties: one arrival per consumer thread).
        /// </summary>
        protected void InitBarriers(int firstFullArrivals)
        {
            smem = w.U32("smem");
            state = w.B64("mbarrier_state");
            w.Op("mov.u32", smem, "smem");
            var notFirst = w.Pred("not_first_thread");
            var initDone = w.NewLabel("init_done");
            w.Op("setp.ne.u32", notFirst, tid, 0);
            w.BranchIf(notFirst, false, initDone);
            var barriers = new List<(int Index, int Count)> { (BarrierQ(), 1) };
            for (int stage = 0; stage < plan.Stages; stage++)
            {
                barriers.Add((Barrier(0, stage), firstFullArrivals));
                barriers.Add((Barrier(1, stage), plan.ConsumerWarpGroups * 128));
                barriers.Add((Barrier(2, stage), 1));
                barriers.Add((Barrier(3, stage), plan.ConsumerWarpGroups * 128));
            }
            if (again)
            {
                // PTX ISA 9.7.12.15.10: an mbarrier is invalidated before its memory is initialized again.
                foreach (var (index, _) in barriers)
                    w.Op("mbarrier.inval.shared::cta.b64", $"[{BarrierAddress(index)}]");
            }
            foreach (var (index, count) in barriers)
                MbarrierInit(index, count);
            w.Comment("PTX ISA 9.7.12.15.2: make the initialized barriers visible before any thread uses them.");
            w.Op("fence.mbarrier_init.release.cluster");
            w.Label(initDone);
            // A later pass reaches this from each role's own code: the non-aligned barrier.
            w.Op(again ? "barrier.sync" : "bar.sync", 0);
        }

        /// <summary>Barrier kinds per stage: 0 K full, 1 K empty, 2 V full, 3 V empty; the resident tiles' barrier is index 0.</summary>
        protected static int BarrierQ() => 0;

        protected int Barrier(int kind, int stage) => 1 + kind * plan.Stages + stage;

        protected string BarrierAddress(int index)
        {
            var address = w.Temp("u32");
            w.Op("add.u32", address, smem, plan.BarrierOffset + 8 * index);
            return address.Name;
        }

        /// <summary>The address of a stage's barrier of one kind, the stage a register.</summary>
        protected string StageBarrier(int kind, Reg stage)
        {
            var address = w.Temp("u32");
            w.Op("mad.lo.u32", address, stage, 8, smem);
            w.Op("add.u32", address, address, plan.BarrierOffset + 8 * Barrier(kind, 0));
            return address.Name;
        }

        /// <summary>PTX ISA 9.7.12.15.9: mbarrier.init with the expected arrival count.</summary>
        protected void MbarrierInit(int index, int count) =>
            w.Op("mbarrier.init.shared::cta.b64", $"[{BarrierAddress(index)}]", count);

        /// <summary>PTX ISA 9.7.12.15.16: spin on try_wait.parity until the phase of that parity has completed.</summary>
        protected void MbarrierWait(string address, Reg parity)
        {
            var retry = w.NewLabel("wait");
            var ready = w.Temp("pred");
            w.Label(retry);
            w.Op("mbarrier.try_wait.parity.shared::cta.b64", ready, $"[{address}]", parity);
            w.BranchIf(ready, true, retry);
        }

        // ---------------------------------------------------------------- TMA and wgmma

        /// <summary>The generic address of a tensor-map kernel parameter (PTX ISA 9.7.9.23, cvta.param).</summary>
        protected Reg TensorMap(string parameter)
        {
            var address = w.B64(parameter + "_address");
            w.Op("mov.b64", address, parameter);
            w.Op("cvta.param.u64", address, address);
            return address;
        }

        /// <summary>
        /// PTX ISA 9.7.9.25.5.1: one TMA copy of a box (64 columns × 1 head × rows × 1 batch) from a 4-D tensor
        /// [B, M, H, K] into shared memory, completing on an mbarrier; rows past the tensor's end arrive as zeros.
        /// </summary>
        protected void TmaLoad(Reg destination, Reg tensorMap, int chunk, Reg head, Reg firstRow, string barrier)
        {
            var column = w.Temp("s32");
            w.Op("mov.s32", column, chunk * HopperPlan.ChunkColumns);
            w.Op("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes",
                $"[{destination}]", $"[{tensorMap}, {{{column}, {head}, {firstRow}, {b}}}]", $"[{barrier}]");
        }

        /// <summary>
        /// A wgmma shared-memory descriptor (PTX ISA 9.7.15.5.1.2): start address, leading and stride byte offsets in 16-byte
        /// units, 128-byte swizzle. The stride offset is 1024 (8 rows of 128 bytes); the leading offset is the distance between
        /// 64-column chunks for an MN-major operand (unused, 16, for K-major ones).
        /// </summary>
        protected Reg Descriptor(string name, Reg address, int leadingBytes)
        {
            ulong constant = (1UL << 62) | ((ulong)(1024 >> 4) << 32) | ((ulong)(leadingBytes >> 4) << 16);
            var descriptor = w.B64(name);
            var wide = w.Temp("u64");
            var field = w.Temp("u32");
            w.Op("shr.u32", field, address, 4);
            w.Op("and.b32", field, field, 0x3FFF);
            w.Op("cvt.u64.u32", wide, field);
            w.Op("or.b64", descriptor, wide, "0x" + constant.ToString("X16"));
            return descriptor;
        }

        /// <summary>A ring descriptor moved to stage <paramref name="stage"/> (KvTileBytes apart).</summary>
        protected Reg StageDescriptor(Reg ring, Reg stage)
        {
            var descriptor = w.Temp("b64");
            var offset = w.Temp("u64");
            w.Op("mul.wide.u32", offset, stage, plan.KvTileBytes >> 4);
            w.Op("add.s64", descriptor, ring, offset);
            return descriptor;
        }

        /// <summary>
        /// D (m64 × <paramref name="n"/>) = A Bᵀ, both K-major in shared memory: HeadDim / 16 wgmma (PTX ISA 9.7.15.5.2).
        /// <paramref name="descA"/> points at the warpgroup's 64 rows of a tile of <paramref name="rowsA"/> rows,
        /// <paramref name="descB"/> at a tile of <paramref name="rowsB"/> rows; the k-th step moves 32 bytes within a
        /// 64-column chunk, a chunk being rows × 128 bytes. The fence (registers written since the last wgmma) comes first.
        /// Not committed: the caller commits the group.
        /// </summary>
        protected void IssueSharedShared(RegArray d, int n, Reg descA, int rowsA, Reg descB, int rowsB, Reg overwrite, Reg accumulate)
        {
            var descriptors = new List<(Reg A, Reg B)>();
            for (int ks = 0; ks < plan.HeadDim / 16; ks++)
            {
                int chunk = ks / 4, within = ks % 4 * 32;
                var a = w.Temp("b64");
                var bDesc = w.Temp("b64");
                w.Op("add.s64", a, descA, (chunk * rowsA * 128 + within) >> 4);
                w.Op("add.s64", bDesc, descB, (chunk * rowsB * 128 + within) >> 4);
                descriptors.Add((a, bDesc));
            }
            w.Op("wgmma.fence.sync.aligned");
            for (int ks = 0; ks < plan.HeadDim / 16; ks++)
            {
                var (a, bDesc) = descriptors[ks];
                w.Op($"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{plan.Element}.{plan.Element}",
                    d.List(), a, bDesc, ks == 0 ? overwrite : accumulate, 1, 1, 0, 0);
            }
        }

        /// <summary>
        /// D (m64 × HeadDim) += A B: <paramref name="kRows"/> / 16 wgmma with A packed in registers (four words a 16-row
        /// k-step) and B an MN-major tile in shared memory (its rows the k extent, its HeadDim columns contiguous). Not
        /// committed; <paramref name="fence"/> is false where the caller already fenced.
        /// </summary>
        protected void IssueRegisterShared(RegArray d, RegArray a, Reg descB, int kRows, Reg accumulate, bool fence)
        {
            var descriptors = new List<Reg>();
            for (int kk = 0; kk < kRows / 16; kk++)
            {
                var bDesc = w.Temp("b64");
                w.Op("add.s64", bDesc, descB, kk * 16 * 128 >> 4);
                descriptors.Add(bDesc);
            }
            if (fence)
                w.Op("wgmma.fence.sync.aligned");
            for (int kk = 0; kk < kRows / 16; kk++)
            {
                w.Op($"wgmma.mma_async.sync.aligned.m64n{plan.HeadDim}k16.f32.{plan.Element}.{plan.Element}",
                    d.List(), a.List(4 * kk, 4), descriptors[kk], accumulate, 1, 1, 1);
            }
        }

        /// <summary>
        /// Accumulator tiles packed as wgmma A fragments: k-step kk packs tiles 2kk and 2kk + 1 (the m16n8k16 A layout), the
        /// higher column in the upper half.
        /// </summary>
        protected void Pack(RegArray packed, RegArray values)
        {
            string pack = plan.Element == "bf16" ? "cvt.rn.bf16x2.f32" : "cvt.rn.f16x2.f32";
            for (int kk = 0; kk < values.Count / 8; kk++)
            {
                for (int word = 0; word < 4; word++)
                    w.Op(pack, packed[4 * kk + word], values[8 * kk + 2 * word + 1], values[8 * kk + 2 * word]);
            }
        }

        /// <summary>Next tile; the stage wraps around the ring and flips the phase bit it waits on.</summary>
        protected void Advance(Reg tile, Reg stage, Reg phase)
        {
            var wrap = w.Temp("pred");
            w.Op("add.s32", tile, tile, 1);
            w.Op("add.u32", stage, stage, 1);
            w.Op("setp.eq.u32", wrap, stage, plan.Stages);
            w.OpIf(wrap, false, "mov.u32", stage, 0);
            w.OpIf(wrap, false, "xor.b32", phase, phase, 1);
        }

        // ---------------------------------------------------------------- global memory

        protected Reg LoadPointer(string parameter)
        {
            var pointer = w.U64(parameter + "_pointer");
            w.Op("ld.param.u64", pointer, $"[{parameter}]");
            return pointer;
        }

        /// <summary><paramref name="destination"/> = array[index + <paramref name="plus"/>] for an int32 array in global memory.</summary>
        protected void LoadInt(Reg destination, Reg array, Reg index, int plus)
        {
            var address = w.Temp("u64");
            w.Op("mul.wide.s32", address, index, 4);
            w.Op("add.s64", address, address, array);
            w.Op("ld.global.nc.s32", destination, $"[{address}+{4 * plus}]");
        }

        /// <summary>
        /// The address of a thread's first 4-byte pair in row <paramref name="row"/> (row 0 where not <paramref name="valid"/>)
        /// of a 16-bit [B, M, H, HeadDim] tensor at head <paramref name="head"/> of <paramref name="heads"/> over
        /// <paramref name="tokens"/>: pointer + 2 · (((b · tokens + row) · heads + head) · HeadDim + 2 · (lane mod 4)).
        /// </summary>
        protected Reg RowPointer(Reg pointer, Reg row, Reg valid, Reg tokens, Reg heads, Reg head, Reg quad2)
        {
            var index = w.Temp("u64");
            var wide = w.Temp("u64");
            var safeRow = w.Temp("s32");
            w.Op("selp.s32", safeRow, row, 0, valid);
            w.Op("mul.wide.u32", index, b, tokens);
            w.Op("cvt.u64.s32", wide, safeRow);
            w.Op("add.s64", index, index, wide);
            w.Op("cvt.u64.u32", wide, heads);
            w.Op("mul.lo.u64", index, index, wide);
            w.Op("cvt.u64.u32", wide, head);
            w.Op("add.s64", index, index, wide);
            w.Op("mul.lo.u64", index, index, plan.HeadDim * 2);
            w.Op("cvt.u64.s32", wide, quad2);
            w.Op("shl.b64", wide, wide, 1);
            w.Op("add.s64", index, index, wide);
            var rowPointer = w.Temp("u64");
            w.Op("add.s64", rowPointer, pointer, index);
            return rowPointer;
        }

        /// <summary>
        /// Stores a 64-row accumulator of a 16-bit [B, M, H, HeadDim] tensor, times <paramref name="factor"/> (a register or a
        /// literal): each thread its 4-byte pairs of its two rows <paramref name="rows"/> (valid where
        /// <paramref name="valid"/>), at head <paramref name="head"/> of <paramref name="heads"/> over <paramref name="tokens"/>.
        /// Where <paramref name="nanSeen"/> is given, it also becomes true if a stored value is NaN.
        /// </summary>
        protected void StoreRows(
            RegArray acc, Reg pointer, Reg[] rows, Reg[] valid, Reg tokens, Reg heads, Reg head, Reg quad2, string[] factor, Reg? nanSeen = null)
        {
            string pack = plan.Element == "bf16" ? "cvt.rn.bf16x2.f32" : "cvt.rn.f16x2.f32";
            for (int r = 0; r < 2; r++)
            {
                var rowPointer = RowPointer(pointer, rows[r], valid[r], tokens, heads, head, quad2);
                for (int i = 0; i < acc.Count; i += 2)
                {
                    if (Element(i).RowHalf != r)
                        continue;
                    var packed = w.Temp("b32");
                    var lowValue = w.Temp("f32");
                    var highValue = w.Temp("f32");
                    w.Op("mul.f32", lowValue, acc[i], factor[r]);
                    w.Op("mul.f32", highValue, acc[i + 1], factor[r]);
                    if (nanSeen is { } seen)
                        NoteNaN(seen, lowValue, highValue, valid[r]);
                    w.Op(pack, packed, highValue, lowValue);
                    w.OpIf(valid[r], false, "st.global.b32", $"[{rowPointer}+{Element(i).Column * 2}]", packed);
                }
            }
        }

        /// <summary><paramref name="seen"/> |= (a or b is NaN) where <paramref name="valid"/>.</summary>
        protected void NoteNaN(Reg seen, Reg a, Reg b, Reg valid)
        {
            var nan = w.Temp("pred");
            w.Op("setp.nan.f32", nan, a, b);
            w.Op("and.pred", nan, nan, valid);
            w.Op("or.pred", seen, seen, nan);
        }

        // ---------------------------------------------------------------- non-finite values (HopperMode)

        /// <summary>
        /// Rewrites a staged 16-bit operand tile (<paramref name="bytes"/> at shared address <paramref name="tile"/>, any
        /// layout) where it holds a NaN or an infinity: <see cref="HopperMode.Sanitize"/> zeroes those elements,
        /// <see cref="HopperMode.Poison"/> makes the tile their 0/1 indicator. Every consumer thread scans 16 bytes at a
        /// time; <c>barrier.red.or</c> (named barrier 1, the consumer warpgroups) gives all of them the same answer, which the
        /// result holds, so branches on it are uniform. A flagged tile is rewritten and fenced for wgmma's async proxy
        /// (fence.proxy.async, then the barrier again) before any consumer reads it. The caller has waited for the tile and
        /// for every wgmma that reads it before the rewrite.
        /// </summary>
        protected Reg RewriteNonFinite(Reg tile, int bytes, string name)
        {
            int threads = plan.ConsumerWarpGroups * 128;
            string exponent = plan.Element == "bf16" ? "0x7F80" : "0x7C00";
            string high = plan.Element == "bf16" ? "0x7F800000" : "0x7C000000";
            string one = plan.Element == "bf16" ? "0x3F80" : "0x3C00";
            var flagged = w.Pred(name + "_nonfinite");
            var bad = w.Temp("pred");
            var seen = w.Temp("pred");
            var chunk = w.Temp("u32");
            var half = w.Temp("b32");
            var words = w.Array("b32", "tile_words", 4);
            w.Comment(mode == HopperMode.Poison
                ? "Does the staged tile hold a NaN or Inf? Then make it their 0/1 indicator (barrier.red.or, fence.proxy.async)."
                : "Does the staged tile hold a NaN or Inf? Then zero those elements (barrier.red.or, fence.proxy.async).");
            w.Op("sub.u32", chunk, tid, 128);
            w.Op("shl.b32", chunk, chunk, 4);
            w.Op("add.u32", chunk, chunk, tile);
            w.Op("setp.ne.u32", seen, chunk, chunk);
            void Chunks(System.Action<int> body)
            {
                for (int offset = 0; offset < bytes; offset += 16 * threads)
                {
                    string? skip = null;
                    if (offset + 16 * threads > bytes)
                    {
                        var end = w.Temp("u32");
                        var past = w.Temp("pred");
                        skip = w.NewLabel("tile_chunk");
                        w.Op("add.u32", end, tile, bytes - offset);
                        w.Op("setp.ge.u32", past, chunk, end);
                        w.BranchIf(past, false, skip);
                    }
                    body(offset);
                    if (skip is not null)
                        w.Label(skip);
                }
            }
            Chunks(offset =>
            {
                w.Op("ld.shared.v4.b32", words.List(), $"[{chunk}+{offset}]");
                for (int i = 0; i < 4; i++)
                {
                    w.Op("and.b32", half, words[i], exponent);
                    w.Op("setp.eq.or.b32", seen, half, exponent, seen);
                    w.Op("and.b32", half, words[i], high);
                    w.Op("setp.eq.or.b32", seen, half, high, seen);
                }
            });
            w.Op("barrier.red.or.pred", flagged, 1, threads, seen);
            var done = w.NewLabel(name + "_finite");
            w.BranchIf(flagged, true, done);
            var result = w.Temp("b32");
            Chunks(offset =>
            {
                w.Op("ld.shared.v4.b32", words.List(), $"[{chunk}+{offset}]");
                for (int i = 0; i < 4; i++)
                {
                    if (mode == HopperMode.Poison)
                    {
                        w.Op("mov.b32", result, 0);
                        w.Op("and.b32", half, words[i], exponent);
                        w.Op("setp.eq.b32", bad, half, exponent);
                        w.OpIf(bad, false, "or.b32", result, result, one);
                        w.Op("and.b32", half, words[i], high);
                        w.Op("setp.eq.b32", bad, half, high);
                        w.OpIf(bad, false, "or.b32", result, result, one + "0000");
                        w.Op("mov.b32", words[i], result);
                    }
                    else
                    {
                        w.Op("and.b32", half, words[i], exponent);
                        w.Op("setp.eq.b32", bad, half, exponent);
                        w.OpIf(bad, false, "and.b32", words[i], words[i], "0xFFFF0000");
                        w.Op("and.b32", half, words[i], high);
                        w.Op("setp.eq.b32", bad, half, high);
                        w.OpIf(bad, false, "and.b32", words[i], words[i], "0x0000FFFF");
                    }
                }
                w.Op("st.shared.v4.b32", $"[{chunk}+{offset}]", words.List());
            });
            w.Op("fence.proxy.async.shared::cta");
            w.Op("barrier.sync", 1, threads);
            w.Label(done);
            return flagged;
        }

        /// <summary>
        /// <see cref="RewriteNonFinite"/> on the ring's tile at <paramref name="stage"/>; in the poisoning pass, also the branch
        /// past the product for a tile without a non-finite element (its indicator is all 0), whose label it returns.
        /// </summary>
        protected string? RewriteStagedTile(string name, Reg ring, Reg stage)
        {
            var address = w.U32(name + "_stage");
            w.Op("mad.lo.u32", address, stage, plan.KvTileBytes, ring);
            var flagged = RewriteNonFinite(address, plan.KvTileBytes, name);
            if (mode != HopperMode.Poison)
                return null;
            var clean = w.NewLabel("clean_" + name);
            w.BranchIf(flagged, true, clean);
            return clean;
        }

        /// <summary>
        /// The <see cref="HopperMode.Poison"/> kernels' A operand: 1 where the weight (P, or Pᵀ) is not 0 (a NaN weight
        /// included), 0 where it is, packed like <see cref="Pack"/>.
        /// </summary>
        protected void PackIndicators(RegArray packed, RegArray values)
        {
            w.Comment("The weights' 0/1 indicator (1 where P is not 0, NaN included) as the A operand.");
            var nonzero = w.Temp("pred");
            for (int i = 0; i < values.Count; i++)
            {
                w.Op("setp.neu.f32", nonzero, values[i], Zero);
                w.Op("selp.f32", values[i], PtxWriter.Float(1f), Zero, nonzero);
            }
            Pack(packed, values);
        }

        /// <summary>
        /// The <see cref="HopperMode.Poison"/> kernels' store: where the indicator product <paramref name="acc"/> is not 0,
        /// the output element becomes NaN (a read-modify-write of its 4-byte pair); nothing else is written. Rows and
        /// addressing as <see cref="StoreRows"/>.
        /// </summary>
        protected void PoisonRows(RegArray acc, Reg pointer, Reg[] rows, Reg[] valid, Reg tokens, Reg heads, Reg head, Reg quad2)
        {
            string nan = plan.Element == "bf16" ? "0x7FC0" : "0x7E00";
            w.Comment("NaN where a row gave a non-zero weight to a non-finite element (the indicator product is not 0).");
            for (int r = 0; r < 2; r++)
            {
                var rowPointer = RowPointer(pointer, rows[r], valid[r], tokens, heads, head, quad2);
                for (int i = 0; i < acc.Count; i += 2)
                {
                    if (Element(i).RowHalf != r)
                        continue;
                    var low = w.Temp("pred");
                    var highHit = w.Temp("pred");
                    var any = w.Temp("pred");
                    var word = w.Temp("b32");
                    var skip = w.NewLabel("clean_pair");
                    w.Op("setp.ne.f32", low, acc[i], Zero);
                    w.Op("setp.ne.f32", highHit, acc[i + 1], Zero);
                    w.Op("or.pred", any, low, highHit);
                    w.Op("and.pred", any, any, valid[r]);
                    w.BranchIf(any, true, skip);
                    w.Op("ld.global.b32", word, $"[{rowPointer}+{Element(i).Column * 2}]");
                    w.OpIf(low, false, "and.b32", word, word, "0xFFFF0000");
                    w.OpIf(low, false, "or.b32", word, word, nan);
                    w.OpIf(highHit, false, "and.b32", word, word, "0x0000FFFF");
                    w.OpIf(highHit, false, "or.b32", word, word, nan + "0000");
                    w.Op("st.global.b32", $"[{rowPointer}+{Element(i).Column * 2}]", word);
                    w.Label(skip);
                }
            }
        }

        /// <summary>A balanced tree over some of an array's registers (independent operations for the scheduler).</summary>
        protected Reg Reduce(string opcode, string name, RegArray values, List<int> elements)
        {
            var result = w.F32(name);
            var level = elements.Select(i => values[i]).ToList();
            int depth = 0;
            while (level.Count > 1)
            {
                var next = new List<Reg>();
                for (int k = 0; k + 1 < level.Count; k += 2)
                {
                    var partial = level.Count == 2 ? result : w.F32($"{name}_{depth}_{k / 2}");
                    w.Op(opcode, partial, level[k], level[k + 1]);
                    next.Add(partial);
                }
                if (level.Count % 2 == 1)
                    next.Add(level[level.Count - 1]);
                level = next;
                depth++;
            }
            if (level[0].Name != result.Name)
                w.Op("mov.f32", result, level[0]);
            return result;
        }
    }
}
