using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>
    /// Inference with a KV cache, and split-KV decoding. Few query rows a key/value head (decoding) run the decode kernel
    /// (<see cref="DecodeAttention"/>), which reads padded and paged caches in place. Every other case is planned as pieces: the query rows of one sequence
    /// against one contiguous range of its keys, with or without a top-left causal mask inside the piece. A launch of the
    /// block-diagonal (or block-diagonal causal) variant runs all the pieces of one kind at once, one segment each, and
    /// pieces that cover the same query row are merged by their log-sum-exp (<see cref="AttentionMerge"/>):
    /// <list type="bullet">
    /// <item>a padded cache: one piece per sequence, keys [s · padding, s · padding + kvSeqlen);</item>
    /// <item>a paged cache: the pages are first gathered into contiguous rows, then as padded;</item>
    /// <item>causal with offset: query a of a sequence sees key t ≤ a + kvSeqlen − qSeqlen, so every query sees the first
    /// kvSeqlen − qSeqlen + 1 keys (one piece without a mask) and the last rows see the remaining keys causally, top-left
    /// (one piece in a causal launch);</item>
    /// <item>split-KV: the unmasked piece of each sequence is cut into key chunks, so that few queries over long caches
    /// still fill the device (<see cref="SplitKvChunks"/>).</item>
    /// </list>
    /// When pieces hold fewer query rows than a group of the forward owns, each piece's rows are padded to a multiple of
    /// that tile (copied into a temporary; padding rows see no key), so that no group walks another piece's keys.
    /// </summary>
    public static partial class Fmha
    {
        /// <summary>Split-KV cuts keys into chunks of at least this many (a few K/V tiles each).</summary>
        internal const int SplitKvMinChunk = 256;

        /// <summary>Chunks are multiples of this many keys (whole K/V tiles of every variant).</summary>
        internal const int SplitKvChunkAlign = 64;

        /// <summary>Split-KV never cuts a sequence's keys into more chunks than this.</summary>
        internal const int SplitKvMaxChunks = 64;

        /// <summary>Split-KV applies to dense inputs with at most this many queries per batch entry.</summary>
        internal const int SplitKvMaxQueries = 16;

        /// <summary>One sequence: query rows [QStart, QStart + QLength) of the packed query, keys [KvStart, KvStart + KvLength).</summary>
        internal readonly record struct SequenceKeys(int QStart, int QLength, int KvStart, int KvLength);

        /// <summary>Query rows [QStart, QStart + QLength) against keys [KvStart, KvStart + KvLength): one segment of a launch.</summary>
        internal readonly record struct KeyPiece(int QStart, int QLength, int KvStart, int KvLength);

        /// <summary>
        /// How many chunks split-KV cuts the longest key range into. The forward runs one group per (query tile, head);
        /// when those groups number fewer than <paramref name="groupsPerMultiprocessor"/> per multiprocessor
        /// (<paramref name="multiprocessors"/>: SMs on CUDA; two for ILGPU's kernels, one for the sm_90a forward, whose K/V
        /// ring fills shared memory), the keys are cut so that the groups reach that many, in chunks of at least
        /// <see cref="SplitKvMinChunk"/> keys and at most <see cref="SplitKvMaxChunks"/> chunks. 1 means no split.
        /// </summary>
        internal static int SplitKvChunks(long queryTiles, int heads, int longestKeys, int multiprocessors, int groupsPerMultiprocessor = 2)
        {
            long groups = queryTiles * heads;
            long target = (long)Math.Max(1, groupsPerMultiprocessor) * Math.Max(1, multiprocessors);
            if (groups <= 0 || groups >= target || longestKeys < 2 * SplitKvMinChunk)
                return 1;
            long byOccupancy = (target + groups - 1) / groups;
            long byLength = longestKeys / SplitKvMinChunk;
            return (int)Math.Min(Math.Min(byOccupancy, byLength), SplitKvMaxChunks);
        }

        /// <summary>
        /// The pieces of a plan: those without a mask (the unmasked keys of every sequence, in <paramref name="chunks"/>
        /// chunks for the longest) and, for <paramref name="causalWithOffset"/>, the causal ones. Both lists are in key order.
        /// </summary>
        internal static (KeyPiece[] Full, KeyPiece[] Causal) PlanPieces(IReadOnlyList<SequenceKeys> sequences, bool causalWithOffset, int chunks)
        {
            int longest = 0;
            foreach (var s in sequences)
                longest = Math.Max(longest, s.QLength == 0 ? 0 : UnmaskedKeys(s, causalWithOffset));
            int chunk = chunks <= 1 || longest == 0 ? int.MaxValue : RoundUp((longest + chunks - 1) / chunks, SplitKvChunkAlign);
            var full = new List<KeyPiece>();
            var causal = new List<KeyPiece>();
            foreach (var s in sequences)
            {
                if (s.QLength == 0)
                    continue;
                int prefix = UnmaskedKeys(s, causalWithOffset);
                int diagonal = s.KvLength - prefix;
                for (int start = 0; start < prefix; start += chunk)
                    full.Add(new KeyPiece(s.QStart, s.QLength, s.KvStart + start, Math.Min(chunk, prefix - start)));
                if (diagonal > 0)
                    causal.Add(new KeyPiece(s.QStart + s.QLength - diagonal, diagonal, s.KvStart + prefix, diagonal));
                else if (prefix == 0)
                    full.Add(new KeyPiece(s.QStart, s.QLength, s.KvStart, 0)); // no key: O = 0, LSE = -inf
            }
            return (full.ToArray(), causal.ToArray());
        }

        /// <summary>Keys every query of the sequence sees: all of them, or for causal with offset the first kvSeqlen − qSeqlen + 1.</summary>
        private static int UnmaskedKeys(SequenceKeys s, bool causalWithOffset) =>
            causalWithOffset ? Math.Clamp(s.KvLength - s.QLength + 1, 0, s.KvLength) : s.KvLength;

        /// <summary>A KV-cache mask's forward: O, and with <paramref name="keepLse"/> the LSE [1, Hq, ΣqSeqlen] (else it goes to scratch).</summary>
        private static (Tensor<T> Output, Tensor<float>? Lse) KvCacheAttention<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, KvCacheMask mask, float? scale, bool keepLse)
            where T : unmanaged
        {
            var p = IsSystemHalf<T>()
                ? AttentionProblem.Create(AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), null, scale)
                : AttentionProblem.Create(query, key, value, null, scale);
            var output = Tensor<T>.Empty(query.Context, p.QueryShape);
            var lse = keepLse ? Tensor<float>.Empty(query.Context, p.LseShape) : null;
            try
            {
                KvCacheForward(query, key, value, mask, scale, output, lse);
            }
            catch
            {
                output.Dispose();
                lse?.Dispose();
                throw;
            }
            lse?.MarkWritten();
            return (output, lse);
        }

        /// <summary>
        /// A KV-cache mask's forward into <paramref name="output"/> and <paramref name="lse"/> [1, Hq, ΣqSeqlen] (the context's
        /// scratch when null); System.Half runs on aliases of the same storage.
        /// </summary>
        internal static void KvCacheForward<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, KvCacheMask mask, float? scale, Tensor<T> output, Tensor<float>? lse, int? chunks = null)
            where T : unmanaged
        {
            if (IsSystemHalf<T>())
            {
                KvCacheForward(AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), mask, scale, AsIlgpu(output), lse, chunks);
                return;
            }
            var problem = AttentionProblem.Create(query, key, value, null, scale);
            if (problem.Batch != 1)
                throw new ArgumentException($"query is {query.ShapeString}; a KV-cache mask packs sequences along dim 1 and needs batch 1.", nameof(query));
            if (mask.TotalQ != problem.Mq)
                throw new ArgumentException($"attnBias: the query seqlens sum to {mask.TotalQ} tokens but query has {problem.Mq} (dim 1 of {query.ShapeString}).", "attnBias");
            mask.CheckKeyRows(problem.Mkv, key.ShapeString);

            var context = query.Context;
            lock (context.LaunchLock)
            {
                var lseView = lse?.View ?? context.Scratch(LseSlot, problem.Hq * (long)problem.Mq);
                if (TryDecodeCache(query, key, value, mask, problem, output, lseView, chunks))
                    return;
                var starts = mask.KeyStarts();
                var sequences = new SequenceKeys[mask.Count];
                for (int s = 0; s < sequences.Length; s++)
                    sequences[s] = new SequenceKeys(mask.QSeqStarts[s], mask.QSeqlens[s], starts[s], mask.KvSeqlens[s]);
                if (mask.GatherMap() is not { } map)
                {
                    RunPieces(query, key, value, sequences, mask.IsCausalWithOffset, scale, chunks, output, lseView, mask);
                    return;
                }
                // A paged cache: each sequence's pages gathered into contiguous rows (one read and one write of the filled cache).
                var gatheredShape = key.Shape.ToArray();
                gatheredShape[1] = map.Length;
                using var rows = Tensor<int>.FromArray(context, map.Length == 0 ? new[] { -1 } : map, Math.Max(1, map.Length));
                using var gatheredKey = Tensor<T>.Empty(context, gatheredShape);
                using var gatheredValue = Tensor<T>.Empty(context, gatheredShape);
                try
                {
                    long width = problem.Hkv * (long)problem.HeadDim;
                    RowGather.Gather(context.Accelerator, key.View, gatheredKey.View, rows.View, width);
                    RowGather.Gather(context.Accelerator, value.View, gatheredValue.View, rows.View, width);
                    RunPieces(query, gatheredKey, gatheredValue, sequences, mask.IsCausalWithOffset, scale, chunks, output, lseView, mask);
                }
                finally
                {
                    context.Synchronize();
                }
            }
        }

        /// <summary>
        /// A KV-cache mask through <see cref="DecodeAttention"/> when it takes the shape (few query rows per key/value head):
        /// the padded cache read in place, a paged one through its block table, no gather. False: nothing launched.
        /// </summary>
        private static bool TryDecodeCache<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, KvCacheMask mask, AttentionProblem problem, Tensor<T> output, ArrayView<float> lse, int? chunks)
            where T : unmanaged
        {
            if (mask.Count == 0 || query.Rank != 4 || key.Rank != 4 || value.Rank != 4)
                return false;
            int longestQuery = mask.QSeqlens.Max(), longestKeys = mask.KvSeqlens.Max();
            if (!DecodeAttention.Takes(query.Context.Accelerator, problem.HeadDim, longestQuery, problem.GroupSize, query.View, key.View, value.View, output.View))
                return false;
            var context = query.Context;
            var tables = mask.OnDeviceForDecode(context.Accelerator);
            var pages = mask.Pages;
            var layout = new DecodeAttention.Layout(
                mask.Count, longestQuery, longestKeys, tables.Sequences.View, 0, 0, tables.BlockTable.View,
                pages?.Table.GetLength(1) ?? 0, pages?.PageSize ?? 0, mask.IsCausalWithOffset);
            DecodeAttention.Run(context, query.View, key.View, value.View, problem.Hq, problem.Hkv, problem.HeadDim, problem.Scale,
                layout, problem.Mq, output.View, lse, chunks);
            output.MarkWritten();
            return true;
        }

        /// <summary>Dense decoding through <see cref="DecodeAttention"/>: the batch as sequences of equal lengths, no table.</summary>
        private static void RunDenseDecode<T>(AttentionProblem p, Tensor<T> query, Tensor<T> key, Tensor<T> value, bool causal, Tensor<T> output)
            where T : unmanaged
        {
            var context = query.Context;
            var layout = new DecodeAttention.Layout(p.Batch, p.Mq, p.Mkv, ArrayView<int>.Empty, p.Mq, p.Mkv, ArrayView<int>.Empty, 0, 0, causal);
            lock (context.LaunchLock)
            {
                DecodeAttention.Run(context, query.View, key.View, value.View, p.Hq, p.Hkv, p.HeadDim, p.Scale,
                    layout, p.Batch * p.Mq, output.View, context.Scratch(LseSlot, (long)p.Batch * p.Hq * p.Mq));
            }
        }

        /// <summary>
        /// Dense decoding (at most <see cref="SplitKvMaxQueries"/> queries per batch entry, no bias, no mask or
        /// <see cref="LowerTriangularFromBottomRightMask"/>): through the decode kernel when it takes the shape, else, when
        /// <see cref="SplitKvChunks"/> says the keys should be split, the batch is read as packed sequences of equal lengths
        /// (a reshape, no copy) and run as pieces. Null otherwise.
        /// </summary>
        private static Tensor<T>? TrySplitKvDecode<T>(Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias, float? scale)
            where T : unmanaged
        {
            if (attnBias is not (null or NoMask or LowerTriangularFromBottomRightMask))
                return null;
            var p = IsSystemHalf<T>()
                ? AttentionProblem.Create(AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), attnBias, scale)
                : AttentionProblem.Create(query, key, value, attnBias, scale);
            bool causal = p.Mask == MaskKind.CausalFromBottomRight;
            if (p.IsEmpty || p.Mq > SplitKvMaxQueries || p.Mkv == 0)
                return null;
            bool kernel = query.Rank == 4 && key.Rank == 4 && value.Rank == 4 && (IsSystemHalf<T>()
                ? DecodeAttention.Takes(query.Context.Accelerator, p.HeadDim, p.Mq, p.GroupSize, AsIlgpu(query).View, AsIlgpu(key).View, AsIlgpu(value).View)
                : DecodeAttention.Takes(query.Context.Accelerator, p.HeadDim, p.Mq, p.GroupSize, query.View, key.View, value.View));
            if (!kernel)
            {
                int chunks = SplitKvChunks(p.Batch, p.Hq, UnmaskedKeys(new SequenceKeys(0, p.Mq, 0, p.Mkv), causal), query.Context.Accelerator.NumMultiprocessors);
                if (chunks <= 1 || !CanRunPieces(p, ElementType.Of<T>(), query.Context, causal && p.Mq > 1))
                    return null;
            }
            var output = Tensor<T>.Empty(query.Context, p.QueryShape);
            try
            {
                if (kernel && IsSystemHalf<T>())
                    RunDenseDecode(p, AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), causal, AsIlgpu(output));
                else if (kernel)
                    RunDenseDecode(p, query, key, value, causal, output);
                else if (IsSystemHalf<T>())
                    RunDecode(p, AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), causal, scale, AsIlgpu(output));
                else
                    RunDecode(p, query, key, value, causal, scale, output);
            }
            catch
            {
                output.Dispose();
                throw;
            }
            output.MarkWritten();
            return output;
        }

        /// <summary>Whether the block-diagonal variant (and the causal one, when asked) that pieces run on is registered and fits the device.</summary>
        private static bool CanRunPieces(AttentionProblem p, DType dtype, XFormersContext context, bool causal)
        {
            bool Fits(MaskKind mask) =>
                AttentionRegistry.Find(mask, BiasKind.None, dtype, p.HeadDim, p.Hq, p.Hkv, needBackward: false, needBiasGradient: false) is { } kernel
                && kernel.CanRunOn(context);
            return Fits(MaskKind.BlockDiagonal) && (!causal || Fits(MaskKind.BlockDiagonalCausal));
        }

        /// <summary>Dense decoding's batch entries as sequences of the packed [1, B · M, H, K] tensors.</summary>
        private static SequenceKeys[] DecodeSequences(AttentionProblem p) =>
            Enumerable.Range(0, p.Batch).Select(b => new SequenceKeys(b * p.Mq, p.Mq, b * p.Mkv, p.Mkv)).ToArray();

        /// <summary>
        /// Whether dense decoding, once split (<see cref="TrySplitKvDecode{T}"/>), packs grouped query heads into rows
        /// (<see cref="HeadPacking{T}"/>). Unsplit dense decoding keeps the direct launch: planning pieces on every call (no
        /// mask object keeps the plan) and uploading a segment id per cache row cost more than packing saves there (H200,
        /// B64 Hq32 Hkv8 K128 over 8192 keys: 2.88 ms as pieces against 1.8 ms direct); the padded KV-cache mask, whose plan
        /// is kept, packs.
        /// </summary>
        internal static bool PacksHeads<T>(AttentionProblem p, XFormersContext context)
            where T : unmanaged =>
            HeadPacking<T>(p, context, DecodeSequences(p)).Group > 1;

        /// <summary>Dense decoding as pieces; the split is planned there again, for the packed heads when they pack.</summary>
        private static void RunDecode<T>(AttentionProblem p, Tensor<T> query, Tensor<T> key, Tensor<T> value, bool causal, float? scale, Tensor<T> output)
            where T : unmanaged
        {
            Tensor<T> Packed(Tensor<T> x) => x.Reshape(new[] { 1, p.Batch * x.Dim(1) }.Concat(x.Shape[2..].ToArray()).ToArray());
            lock (query.Context.LaunchLock)
            {
                RunPieces(Packed(query), Packed(key), Packed(value), DecodeSequences(p), causal, scale, chunks: null, Packed(output),
                    query.Context.Scratch(LseSlot, (long)p.Batch * p.Hq * p.Mq), owner: null);
            }
        }

        /// <summary>
        /// Runs <paramref name="sequences"/> (over a [1, Mq, …] query and [1, Mkv, …] keys) as pieces into <paramref name="output"/>
        /// and <paramref name="lse"/> [1, Hq, Mq]. Every check and kernel lookup happens before the first launch. The plan
        /// (and with it the segments uploaded to the device) is kept with <paramref name="owner"/>, so the layers of one
        /// decoding step that share a mask plan and upload once.
        /// </summary>
        private static void RunPieces<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, IReadOnlyList<SequenceKeys> sequences, bool causalWithOffset, float? scale,
            int? chunks, Tensor<T> output, ArrayView<float> lse, KvCacheMask? owner)
            where T : unmanaged
        {
            var context = query.Context;
            var accelerator = context.Accelerator;
            int mq = query.Dim(1), mkv = key.Dim(1);
            var probe = AttentionProblem.Create(query, key, value, BlockDiagonalMask.FromSeqlens(new[] { mq }, new[] { mkv }), scale);
            var fullKernel = Resolve<T>(probe, context, null, needBackward: false, default);
            if (probe.IsEmpty)
                return;
            int tileRows = fullKernel.ForwardRowsPerGroup(accelerator);
            var (group, packedKernel) = HeadPacking<T>(probe, context, sequences);
            int fullTileRows = group > 1 ? packedKernel!.ForwardRowsPerGroup(accelerator) : tileRows;
            long tiles = 0;
            int longest = 0;
            foreach (var s in sequences)
            {
                tiles += ((long)s.QLength * group + fullTileRows - 1) / fullTileRows;
                longest = Math.Max(longest, s.QLength == 0 ? 0 : UnmaskedKeys(s, causalWithOffset));
            }
            // The sm_90a forward holds one group a multiprocessor (its K/V ring fills shared memory); ILGPU's kernels two.
            var splitKernel = group > 1 ? packedKernel! : fullKernel;
            int split = chunks ?? SplitKvChunks(tiles, probe.Hq / group, longest, accelerator.NumMultiprocessors, splitKernel.UsesHopperForward(accelerator) ? 1 : 2);
            PiecesLaunch[] Plan()
            {
                var (fullPieces, causalPieces) = PlanPieces(sequences, causalWithOffset, split);
                var launches = new List<PiecesLaunch>();
                if (fullPieces.Length > 0)
                    launches.Add(new PiecesLaunch(fullPieces, causal: false, fullTileRows, mq, mkv, group));
                if (causalPieces.Length > 0)
                    launches.Add(new PiecesLaunch(causalPieces, causal: true, tileRows, mq, mkv));
                return launches.ToArray();
            }
            var passes = owner is null ? Plan() : Plans.GetOrCreateValue(owner).GetOrAdd((fullTileRows, tileRows, group, split, mq, mkv), _ => Plan());

            if (passes.Length == 1 && passes[0].IsIdentity)
            {
                // One piece per sequence, in order, unpadded: the query itself is the launch's layout.
                var direct = AttentionProblem.Create(query, key, value, passes[0].Mask, scale);
                RunForward(fullKernel, direct, query, key, value, output.View, lse, default);
                output.MarkWritten();
                return;
            }

            var temporaries = new List<IDisposable>();
            try
            {
                var prepared = new List<(PiecesLaunch Launch, AttentionProblem Problem, AttentionKernel<T> Kernel, Tensor<T> Q, Tensor<T> O, Tensor<float> Lse, Tensor<int> QueryRows, Tensor<int>[] Merges)>();
                foreach (var launch in passes)
                {
                    var shape = query.Shape.ToArray();
                    shape[1] = launch.Rows;
                    shape[2] = probe.Hq / launch.HeadGroup;
                    var q = Keep(temporaries, Tensor<T>.Empty(context, shape));
                    var o = Keep(temporaries, Tensor<T>.Empty(context, shape));
                    var l = Keep(temporaries, Tensor<float>.Empty(context, 1, shape[2], launch.Rows));
                    var gather = launch.GatherMap(probe.Hq);
                    var queryRows = Keep(temporaries, Tensor<int>.FromArray(context, gather, gather.Length));
                    var merges = launch.MergeMaps(mq).Select(m => Keep(temporaries, Tensor<int>.FromArray(context, m, m.Length))).ToArray();
                    var problem = AttentionProblem.Create(q, key, value, launch.Mask, scale);
                    var kernel = launch.Causal ? Resolve<T>(problem, context, null, needBackward: false, default)
                        : launch.HeadGroup > 1 ? packedKernel! : fullKernel;
                    prepared.Add((launch, problem, kernel, q, o, l, queryRows, merges));
                }
                var acc = Keep(temporaries, Tensor<float>.Empty(context, (int)Math.Max(1, output.Length)));
                var rowSum = Keep(temporaries, Tensor<float>.Empty(context, (int)Math.Max(1, (long)probe.Hq * mq)));

                var merge = new MergeArgs<T>
                {
                    Batch = 1,
                    Rows = mq,
                    Heads = probe.Hq,
                    HeadDim = probe.HeadDim,
                    First = 1,
                    Acc = acc.View,
                    RowMax = lse,
                    RowSum = rowSum.View,
                    Merged = output.View,
                    MergedLse = lse,
                };
                foreach (var (launch, problem, kernel, q, o, l, queryRows, merges) in prepared)
                {
                    RowGather.Gather(accelerator, query.View, q.View, queryRows.View, launch.GatherWidth(probe.Hq, probe.HeadDim));
                    RunForward(kernel, problem, q, key, value, o.View, l.View, default);
                    foreach (var map in merges)
                    {
                        merge.SourceRows = launch.Rows;
                        merge.HeadGroup = launch.HeadGroup;
                        merge.Output = o.View;
                        merge.Lse = l.View;
                        merge.RowMap = map.View;
                        AttentionMerge.Step(accelerator, merge);
                        merge.First = 0;
                    }
                }
                AttentionMerge.Finish(accelerator, merge);
                output.MarkWritten();
            }
            finally
            {
                context.Synchronize();
                foreach (var t in temporaries)
                    t.Dispose();
            }
        }

        /// <summary>
        /// Whether the pieces' query heads are packed into rows (<see cref="PiecesLaunch.HeadGroup"/>), and the kernel that
        /// runs them: with grouped-query heads (Hq = g · Hkv, g &gt; 1) and every sequence's queries of all g heads within
        /// one group of the forward (decoding), one group reads each key and value tile once for the g heads instead of g
        /// times. The packed launch has Hkv heads of both kinds; it needs a block-diagonal variant that takes them. (1, null)
        /// otherwise.
        /// </summary>
        private static (int Group, AttentionKernel<T>? Kernel) HeadPacking<T>(AttentionProblem probe, XFormersContext context, IReadOnlyList<SequenceKeys> sequences)
            where T : unmanaged
        {
            int group = probe.Hq / probe.Hkv;
            if (group <= 1 || sequences.Count == 0)
                return (1, null);
            if (AttentionRegistry.Find(MaskKind.BlockDiagonal, BiasKind.None, ElementType.Of<T>(), probe.HeadDim, probe.Hkv, probe.Hkv, needBackward: false, needBiasGradient: false)
                is not AttentionKernel<T> kernel || !kernel.CanRunOn(context))
                return (1, null);
            int tileRows = kernel.ForwardRowsPerGroup(context.Accelerator);
            foreach (var s in sequences)
            {
                if ((long)s.QLength * group > tileRows)
                    return (1, null);
            }
            return (group, kernel);
        }

        /// <summary>Plans kept per mask, by tile rows (packed and causal launches), head group, chunks and the query and key row counts.</summary>
        private static readonly ConditionalWeakTable<KvCacheMask, ConcurrentDictionary<(int FullTileRows, int TileRows, int HeadGroup, int Split, int Mq, int Mkv), PiecesLaunch[]>> Plans = new();

        private static TDisposable Keep<TDisposable>(List<IDisposable> temporaries, TDisposable item)
            where TDisposable : IDisposable
        {
            temporaries.Add(item);
            return item;
        }

        private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

        /// <summary>
        /// One launch's layout: its pieces in key order, each piece's query rows at <see cref="RowStarts"/> (padded to the
        /// forward's tile when pieces are short), and the block-diagonal mask that makes each piece a segment: gaps between
        /// pieces' keys and the padding rows become segments with no queries or no keys.
        /// </summary>
        private sealed class PiecesLaunch
        {
            public PiecesLaunch(KeyPiece[] pieces, bool causal, int tileRows, int queryRows, int keyRows, int headGroup = 1)
            {
                Pieces = pieces;
                Causal = causal;
                HeadGroup = headGroup;
                long rowsInPieces = pieces.Sum(p => (long)p.QLength * headGroup);
                int align = rowsInPieces < (long)tileRows * pieces.Length ? tileRows : 1;
                RowStarts = new int[pieces.Length];
                var qLens = new List<int>();
                var kvLens = new List<int>();
                int rows = 0, cursor = 0;
                bool identity = align == 1;
                for (int i = 0; i < pieces.Length; i++)
                {
                    var piece = pieces[i];
                    identity &= piece.QStart == rows;
                    RowStarts[i] = rows;
                    if (piece.KvStart > cursor)
                    {
                        qLens.Add(0);
                        kvLens.Add(piece.KvStart - cursor);
                    }
                    int pieceRows = checked(piece.QLength * headGroup);
                    qLens.Add(pieceRows);
                    kvLens.Add(piece.KvLength);
                    int padded = RoundUp(pieceRows, align);
                    if (padded > pieceRows)
                    {
                        qLens.Add(padded - pieceRows);
                        kvLens.Add(0);
                    }
                    rows = checked(rows + padded);
                    cursor = piece.KvStart + piece.KvLength;
                }
                if (cursor < keyRows)
                {
                    qLens.Add(0);
                    kvLens.Add(keyRows - cursor);
                }
                Rows = rows;
                IsIdentity = identity && headGroup == 1 && rows == queryRows;
                var segments = BlockDiagonalMask.FromSeqlens(qLens, kvLens);
                Mask = causal ? segments.MakeCausal() : segments;
                QueryRows = new int[Math.Max(1, rows)];
                Array.Fill(QueryRows, -1);
                rowHeads = new int[QueryRows.Length];
                for (int i = 0; i < pieces.Length; i++)
                {
                    for (int j = 0; j < headGroup; j++)
                    {
                        for (int a = 0; a < pieces[i].QLength; a++)
                        {
                            int row = RowStarts[i] + j * pieces[i].QLength + a;
                            QueryRows[row] = pieces[i].QStart + a;
                            rowHeads[row] = j;
                        }
                    }
                }
            }

            /// <summary>The head of the group each launch row holds (0 unpacked).</summary>
            private readonly int[] rowHeads;

            /// <summary>
            /// Query heads that share a key head, packed as rows of one launch head (1: none). A packed piece holds its
            /// query rows once per head of the group, head-major (row j · QLength + a is query row a of head j of the
            /// group), so one group of the forward reads each key and value tile once for all the query heads that share it.
            /// Launches without a mask only: the rows of a causal piece are query positions.
            /// </summary>
            public int HeadGroup { get; }

            /// <summary>
            /// The row gather that builds the launch's query [1, Rows, heads, K] from the query [1, Mq, Hq, K], in rows of
            /// <see cref="GatherWidth"/> elements (a whole query row unpacked; one head's K elements packed).
            /// </summary>
            public int[] GatherMap(int queryHeads)
            {
                if (HeadGroup == 1)
                    return QueryRows;
                int launchHeads = queryHeads / HeadGroup;
                var map = new int[Math.Max(1, Rows * launchHeads)];
                Array.Fill(map, -1);
                for (int row = 0; row < Rows; row++)
                {
                    if (QueryRows[row] < 0)
                        continue;
                    for (int hk = 0; hk < launchHeads; hk++)
                        map[row * launchHeads + hk] = QueryRows[row] * queryHeads + hk * HeadGroup + rowHeads[row];
                }
                return map;
            }

            /// <summary>Elements a <see cref="GatherMap"/> entry moves.</summary>
            public long GatherWidth(int queryHeads, int headDim) => HeadGroup == 1 ? (long)queryHeads * headDim : headDim;

            public KeyPiece[] Pieces { get; }

            public bool Causal { get; }

            public int[] RowStarts { get; }

            /// <summary>Query rows of the launch (padding included).</summary>
            public int Rows { get; }

            /// <summary>Whether the launch's rows are the query's rows, in order (the query can be used as it is).</summary>
            public bool IsIdentity { get; }

            public BlockDiagonalMask Mask { get; }

            /// <summary>The query row each launch row copies (−1 for padding).</summary>
            public int[] QueryRows { get; }

            /// <summary>
            /// One map per merge step: query row m, head j of a head group, reads launch row map[m · HeadGroup + j] (−1: none
            /// in this step; <see cref="MergeArgs{T}.RowMap"/>). A query row with n pieces in this launch (its key chunks)
            /// appears in the first n maps.
            /// </summary>
            public IEnumerable<int[]> MergeMaps(int queryRows)
            {
                var layers = new List<int[]>();
                var count = new int[Math.Max(1, queryRows * HeadGroup)];
                for (int row = 0; row < Rows; row++)
                {
                    if (QueryRows[row] < 0)
                        continue;
                    int entry = QueryRows[row] * HeadGroup + rowHeads[row];
                    if (count[entry] == layers.Count)
                    {
                        var layer = new int[count.Length];
                        Array.Fill(layer, -1);
                        layers.Add(layer);
                    }
                    layers[count[entry]++][entry] = row;
                }
                return layers;
            }
        }
    }
}
