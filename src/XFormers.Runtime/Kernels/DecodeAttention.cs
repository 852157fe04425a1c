using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace XFormers.Kernels
{
    /// <summary>Sixteen bytes of a row: eight fp16 or bf16 elements, two to a word (element 2i in the low half of word i).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Word4
    {
        public uint X, Y, Z, W;
    }

    /// <summary>Eight fp32 values a lane: a lane's slice of a query row, of an output row, or of a key or value row.</summary>
    internal struct Lane8
    {
        public float E0, E1, E2, E3, E4, E5, E6, E7;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Lane8 Widen<TWiden>(Word4 w, float scale)
            where TWiden : struct, IWiden16
        {
            var c = default(TWiden);
            return new Lane8
            {
                E0 = c.Low(w.X) * scale, E1 = c.High(w.X) * scale, E2 = c.Low(w.Y) * scale, E3 = c.High(w.Y) * scale,
                E4 = c.Low(w.Z) * scale, E5 = c.High(w.Z) * scale, E6 = c.Low(w.W) * scale, E7 = c.High(w.W) * scale,
            };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly Word4 Narrow<TWiden>(float scale)
            where TWiden : struct, IWiden16
        {
            var c = default(TWiden);
            return new Word4
            {
                X = c.Pack(E0 * scale, E1 * scale), Y = c.Pack(E2 * scale, E3 * scale),
                Z = c.Pack(E4 * scale, E5 * scale), W = c.Pack(E6 * scale, E7 * scale),
            };
        }

        /// <summary>The dot product of the eight with <paramref name="k"/>'s, in pairs.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly float Dot(in Lane8 k) =>
            ((E0 * k.E0 + E1 * k.E1) + (E2 * k.E2 + E3 * k.E3)) + ((E4 * k.E4 + E5 * k.E5) + (E6 * k.E6 + E7 * k.E7));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly Lane8 Scaled(float x) => new()
        {
            E0 = E0 * x, E1 = E1 * x, E2 = E2 * x, E3 = E3 * x, E4 = E4 * x, E5 = E5 * x, E6 = E6 * x, E7 = E7 * x,
        };

        /// <summary>this · <paramref name="alpha"/> + <paramref name="p"/> · <paramref name="v"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly Lane8 ScaleAdd(float alpha, float p, in Lane8 v) => new()
        {
            E0 = E0 * alpha + p * v.E0, E1 = E1 * alpha + p * v.E1, E2 = E2 * alpha + p * v.E2, E3 = E3 * alpha + p * v.E3,
            E4 = E4 * alpha + p * v.E4, E5 = E5 * alpha + p * v.E5, E6 = E6 * alpha + p * v.E6, E7 = E7 * alpha + p * v.E7,
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly Lane8 ShuffleXor(int mask) => new()
        {
            E0 = Warp.ShuffleXor(E0, mask), E1 = Warp.ShuffleXor(E1, mask), E2 = Warp.ShuffleXor(E2, mask), E3 = Warp.ShuffleXor(E3, mask),
            E4 = Warp.ShuffleXor(E4, mask), E5 = Warp.ShuffleXor(E5, mask), E6 = Warp.ShuffleXor(E6, mask), E7 = Warp.ShuffleXor(E7, mask),
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(ArrayView<float> view, long at)
        {
            view[at] = E0; view[at + 1] = E1; view[at + 2] = E2; view[at + 3] = E3;
            view[at + 4] = E4; view[at + 5] = E5; view[at + 6] = E6; view[at + 7] = E7;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Lane8 Load(ArrayView<float> view, long at) => new()
        {
            E0 = view[at], E1 = view[at + 1], E2 = view[at + 2], E3 = view[at + 3],
            E4 = view[at + 4], E5 = view[at + 5], E6 = view[at + 6], E7 = view[at + 7],
        };
    }

    /// <summary>fp16 or bf16 pairs to fp32 and back, as a struct type parameter: the decode kernel is written once.</summary>
    internal interface IWiden16
    {
        float Low(uint pair);

        float High(uint pair);

        /// <summary>Two floats rounded to nearest even, <paramref name="low"/> in bits 0–15.</summary>
        uint Pack(float low, float high);
    }

    internal struct HalfWiden : IWiden16
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Low(uint pair) => (float)Interop.IntAsFloat((ushort)(pair & 0xFFFFu));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float High(uint pair) => (float)Interop.IntAsFloat((ushort)(pair >> 16));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public uint Pack(float low, float high) => TensorCore.PackHalf2(low, high);
    }

    internal struct BFloat16Widen : IWiden16
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Low(uint pair) => Interop.IntAsFloat(pair << 16);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float High(uint pair) => Interop.IntAsFloat(pair & 0xFFFF0000u);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public uint Pack(float low, float high) => TensorCore.PackBFloat162(low, high);
    }

    /// <summary>A constant the decode kernel is specialized on (head dim, rows a key/value head): ILGPU folds it.</summary>
    internal interface IDecodeConstant
    {
        int Value { get; }
    }

    internal struct Const1 : IDecodeConstant { public readonly int Value => 1; }

    internal struct Const2 : IDecodeConstant { public readonly int Value => 2; }

    internal struct Const4 : IDecodeConstant { public readonly int Value => 4; }

    internal struct Const8 : IDecodeConstant { public readonly int Value => 8; }

    internal struct Const64 : IDecodeConstant { public readonly int Value => 64; }

    internal struct Const128 : IDecodeConstant { public readonly int Value => 128; }

    internal struct Const256 : IDecodeConstant { public readonly int Value => 256; }

    /// <summary>
    /// One decode launch. Query [QRows, Hq, HeadDim], key and value [key rows, Hkv, HeadDim] as 16-byte words; sequence s
    /// has query rows [qStart, qStart + qLen) and keys t ∈ [0, kvLen), key t at row kvStart + t, or for a paged cache at
    /// row BlockTable[s, t / PageSize] · PageSize + t mod PageSize.
    /// </summary>
    internal struct DecodeArgs
    {
        public ArrayView<Word4> Query;
        public ArrayView<Word4> Key;
        public ArrayView<Word4> Value;

        /// <summary>Four ints a sequence: qStart, qLen, kvStart, kvLen. Empty: every sequence has UniformQ queries and UniformKv keys, packed.</summary>
        public ArrayView<int> Sequences;
        public int UniformQ;
        public int UniformKv;

        /// <summary>[sequences, PagesPerSequence] page numbers; read when PageSize &gt; 0.</summary>
        public ArrayView<int> BlockTable;
        public int PagesPerSequence;
        public int PageSize;

        /// <summary>log2 of PageSize when it is a power of two, else −1.</summary>
        public int PageShift;

        public int Hq;
        public int Hkv;

        /// <summary>1: query i of a sequence sees key t ≤ i + kvLen − qLen (xFormers' causal with offset).</summary>
        public int Causal;

        /// <summary>The softmax scale times log2(e): scores are kept in base 2.</summary>
        public float ScaleLog2;

        public int ChunkKeys;
        public int Chunks;

        /// <summary>Query rows in all: LSE is [Hq, QRows].</summary>
        public int QRows;

        /// <summary>With one chunk: O [QRows, Hq, HeadDim] and LSE [Hq, QRows], written directly.</summary>
        public ArrayView<Word4> Output;
        public ArrayView<float> Lse;

        /// <summary>With several: each chunk's O [Chunks, QRows, Hq, HeadDim] and LSE [Chunks, Hq, QRows], for <see cref="DecodeAttention.CombineKernel"/>.</summary>
        public ArrayView<float> PartialOutput;
        public ArrayView<float> PartialLse;
    }

    /// <summary>
    /// Attention for few queries over long key/value caches (decoding), memory-bound: each K and V byte is read once.
    /// A group of <see cref="Warps"/> warps owns one (sequence, key/value head, key chunk) and all the query rows that
    /// head serves: the g = Hq / Hkv query heads of every query of the sequence (at most <c>TRows</c>, in registers).
    /// A key row is read by HeadDim / 8 lanes, 16 bytes each, so a warp reads 256 / HeadDim keys an instruction, and
    /// <see cref="Unroll"/> steps of keys and values are in flight before the first is used. Each lane keeps an online
    /// softmax (running max, sum and output slice) per row over the keys it reads; lanes, then warps, are merged at the
    /// end. One chunk writes O and LSE; several write partial results that <see cref="CombineKernel"/> merges by LSE.
    /// A key a row cannot see (past the chunk, or past the causal offset) never touches that row: no 0 · NaN.
    /// </summary>
    internal static class DecodeAttention
    {
        public const int Warps = 4;

        /// <summary>The context's scratch slots for the chunks' partial O and LSE (<see cref="XFormersContext.Scratch"/>).</summary>
        public const int PartialOutputSlot = 2, PartialLseSlot = 3;

        private const float Ln2 = 0.6931471805599453f;

        public const int Threads = Warps * 32;

        /// <summary>Key steps a warp loads before it uses the first.</summary>
        public const int Unroll = 4;

        /// <summary>Rows (query heads × queries of one key/value head) the kernel is specialized for, largest last.</summary>
        public static readonly int[] RowCounts = { 1, 2, 4, 8 };

        /// <summary>Head dims the kernel takes: a key row is 8, 16 or 32 lanes.</summary>
        public static bool TakesHeadDim(int headDim) => headDim is 64 or 128 or 256;

        /// <summary>Dynamic shared memory of a launch: each warp's rows (output slice, max and sum) for the final merge.</summary>
        public static int SharedFloats(int headDim, int rows) => Warps * rows * (headDim + 2);

        /// <summary>Keys a chunk holds at least when the keys are split: its fixed costs (the query load, the final merge) stay small.</summary>
        public const int MinChunkKeys = 1024;

        /// <summary>Chunks hold a multiple of this many keys (whole rounds of the widest step).</summary>
        public const int ChunkAlign = 64;

        /// <summary>
        /// Where the sequences of a launch are: <paramref name="Table"/> (four ints each: qStart, qLen, kvStart, kvLen) on the
        /// device, or when it is empty <paramref name="Count"/> sequences of <paramref name="UniformQ"/> queries and
        /// <paramref name="UniformKv"/> keys packed one after another (dense decoding). A paged cache names its pages in
        /// <paramref name="BlockTable"/> ([Count, PagesPerSequence]) when <paramref name="PageSize"/> &gt; 0.
        /// </summary>
        internal readonly record struct Layout(
            int Count, int LongestQuery, int LongestKeys, ArrayView<int> Table, int UniformQ, int UniformKv,
            ArrayView<int> BlockTable, int PagesPerSequence, int PageSize, bool Causal);

        /// <summary>
        /// Whether the kernel takes the launch: fp16 or bf16, a head dim of 64, 128 or 256, at most 8 rows (queries × query
        /// heads) per key/value head, views on 16-byte boundaries, and 32-lane warps (every GPU; ILGPU's CPU accelerator
        /// only when it is made so).
        /// </summary>
        internal static bool Takes<T>(Accelerator accelerator, int headDim, int longestQuery, int group, params ArrayView<T>[] views)
            where T : unmanaged
        {
            if ((typeof(T) != typeof(ILGPU.Half) && typeof(T) != typeof(BFloat16)) || !TakesHeadDim(headDim) || accelerator.WarpSize != 32)
                return false;
            if ((long)longestQuery * group > RowCounts[^1])
                return false;
            foreach (var view in views)
            {
                if (view.Length > 0 && (IndexInBuffer(view) % 8 != 0 || view.LoadEffectiveAddressAsPtr().ToInt64() % 16 != 0))
                    return false;
            }
            return true;
        }

        /// <summary>
        /// How many chunks the keys are cut into: as many groups as fit two a multiprocessor in one wave, chunks of at least
        /// <see cref="MinChunkKeys"/>. Measured on the H200 (B64 and B8, Hq 32 Hkv 8, K128): a group's fixed costs (its query
        /// load, the final merge) make more chunks slower once every multiprocessor holds two groups (B64 over 8192 keys:
        /// 1.02 ms unsplit, 1.05 in 4 chunks, 1.15 in 16; B8 over 32768: 0.51 ms in 4 chunks, 0.55 in 16, 0.59 in 32).
        /// </summary>
        internal static int PlanChunks(long groups, int longestKeys, int multiprocessors)
        {
            long target = 2L * Math.Max(1, multiprocessors);
            if (groups <= 0 || groups >= target || longestKeys < 2 * MinChunkKeys)
                return 1;
            // Rounded down: a second wave of a few groups costs as much as the first (B8 in 5 chunks, 320 groups: 0.82 ms).
            long byOccupancy = target / groups;
            return (int)Math.Max(1, Math.Min(byOccupancy, longestKeys / MinChunkKeys));
        }

        /// <summary>
        /// Decodes every sequence of <paramref name="layout"/>: O into <paramref name="output"/> [qRows, Hq, HeadDim] and LSE
        /// into <paramref name="lse"/> [Hq, qRows]. The caller checked <see cref="Takes{T}"/> and holds the launch lock;
        /// <paramref name="chunkCount"/> forces a split (tests, the benchmark).
        /// </summary>
        internal static void Run<T>(
            XFormersContext context, ArrayView<T> query, ArrayView<T> key, ArrayView<T> value, int hq, int hkv, int headDim, float scale,
            in Layout layout, int qRows, ArrayView<T> output, ArrayView<float> lse, int? chunkCount = null)
            where T : unmanaged
        {
            var accelerator = context.Accelerator;
            int group = hq / hkv;
            int needed = layout.LongestQuery * group;
            int rows = Array.Find(RowCounts, r => r >= needed);
            var (chunkKeys, chunks) = Chunking(
                layout.LongestKeys, chunkCount ?? PlanChunks((long)layout.Count * hkv, layout.LongestKeys, accelerator.NumMultiprocessors));
            var partialOutput = chunks > 1 ? context.Scratch(PartialOutputSlot, (long)chunks * qRows * hq * headDim) : lse;
            var partialLse = chunks > 1 ? context.Scratch(PartialLseSlot, (long)chunks * hq * qRows) : lse;
            var args = new DecodeArgs
            {
                Query = query.Cast<Word4>(),
                Key = key.Cast<Word4>(),
                Value = value.Cast<Word4>(),
                Sequences = layout.Table,
                UniformQ = layout.UniformQ,
                UniformKv = layout.UniformKv,
                BlockTable = layout.BlockTable,
                PagesPerSequence = layout.PagesPerSequence,
                PageSize = layout.PageSize,
                PageShift = layout.PageSize > 0 && (layout.PageSize & (layout.PageSize - 1)) == 0 ? System.Numerics.BitOperations.Log2((uint)layout.PageSize) : -1,
                Hq = hq,
                Hkv = hkv,
                Causal = layout.Causal ? 1 : 0,
                ScaleLog2 = scale * TensorCore.Log2E,
                ChunkKeys = chunkKeys,
                Chunks = chunks,
                QRows = qRows,
                Output = output.Cast<Word4>(),
                Lse = lse,
                PartialOutput = partialOutput,
                PartialLse = partialLse,
            };
            long groups = (long)layout.Count * hkv * chunks;
            if (groups == 0 || qRows == 0)
                return;
            var config = new KernelConfig(
                new Index3D(checked((int)groups), 1, 1), new Index3D(Threads, 1, 1),
                SharedMemoryConfig.RequestDynamic<float>(SharedFloats(headDim, rows)));
            // On the H200 the driver-launched module (cp.async rings, mma.sync) reads the cache; the ILGPU kernel elsewhere.
            if (Hopper.HopperDecode.Takes(accelerator, headDim, needed, layout.LongestQuery, layout.Causal))
                Hopper.HopperDecode.Launch(accelerator, new Hopper.DecodeTraits(typeof(T) == typeof(BFloat16), headDim, layout.PageSize > 0), args, groups);
            else
                DecodeLauncher<T>(accelerator, headDim, rows)(config, args);
            if (chunks > 1)
                CombineLauncher<T>(accelerator)(checked((int)((long)qRows * hq * (headDim / 8))), args, headDim / 8);
        }

        /// <summary>
        /// Keys a chunk and the number of chunks for about <paramref name="chunkCount"/> chunks of whole
        /// <see cref="ChunkAlign"/> steps (rounding may leave fewer).
        /// </summary>
        internal static (int Keys, int Count) Chunking(int longestKeys, int chunkCount)
        {
            if (longestKeys == 0 || chunkCount <= 1)
                return (Math.Max(1, longestKeys), 1);
            int keys = RoundUp((longestKeys + chunkCount - 1) / chunkCount, ChunkAlign);
            return (keys, (longestKeys + keys - 1) / keys);
        }

        private static Action<KernelConfig, DecodeArgs> DecodeLauncher<T>(Accelerator accelerator, int headDim, int rows)
            where T : unmanaged =>
            KernelCache.GetOrAdd(accelerator, (typeof(DecodeArgs), typeof(T), headDim, rows), static (acc, key) =>
                acc.LoadStreamKernel(KernelMethod(key.Item2 == typeof(BFloat16), key.headDim, key.rows).CreateDelegate<Action<DecodeArgs>>()));

        /// <summary>The kernel's instance for bf16 or fp16, a head dim and a row count.</summary>
        private static System.Reflection.MethodInfo KernelMethod(bool bfloat16, int headDim, int rows)
        {
            var head = headDim switch { 64 => typeof(Const64), 128 => typeof(Const128), _ => typeof(Const256) };
            var rowType = rows switch { 1 => typeof(Const1), 2 => typeof(Const2), 4 => typeof(Const4), _ => typeof(Const8) };
            return typeof(DecodeAttention).GetMethod(nameof(Kernel), System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)!
                .MakeGenericMethod(bfloat16 ? typeof(BFloat16Widen) : typeof(HalfWiden), head, rowType);
        }

        /// <summary>Every instance of the kernel, named dtype_headDim_rows (for the PTX listing).</summary>
        internal static System.Collections.Generic.IEnumerable<(string Name, System.Reflection.MethodInfo Method)> KernelMethods()
        {
            foreach (bool bfloat16 in new[] { false, true })
                foreach (int headDim in new[] { 64, 128, 256 })
                    foreach (int rows in RowCounts)
                        yield return ($"{(bfloat16 ? "BF16" : "F16")}_{headDim}_r{rows}", KernelMethod(bfloat16, headDim, rows));
        }

        private static Action<Index1D, DecodeArgs, int> CombineLauncher<T>(Accelerator accelerator)
            where T : unmanaged =>
            KernelCache.GetOrAdd(accelerator, (typeof(DecodeArgs), typeof(T), "combine"), static (acc, key) =>
                acc.LoadAutoGroupedStreamKernel(key.Item2 == typeof(BFloat16)
                    ? new Action<Index1D, DecodeArgs, int>(CombineKernel<BFloat16Widen>)
                    : CombineKernel<HalfWiden>));

        private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

        /// <summary>The view's element offset into its buffer (a constrained call: no boxing).</summary>
        private static long IndexInBuffer<TView>(TView view)
            where TView : IContiguousArrayView => view.Index;

        /// <summary>The decode kernel; see the class.</summary>
        internal static void Kernel<TWiden, THead, TRows>(DecodeArgs a)
            where TWiden : struct, IWiden16
            where THead : struct, IDecodeConstant
            where TRows : struct, IDecodeConstant
        {
            int headDim = default(THead).Value;
            int maxRows = default(TRows).Value;
            int lanesPerKey = headDim / 8;
            int keysPerStep = 32 / lanesPerKey;
            int words = headDim / 8;
            int lane = Warp.LaneIdx;
            int warp = Group.IdxX / 32;
            int sub = lane / lanesPerKey;
            int slice = lane % lanesPerKey;

            int block = Grid.IdxX;
            int chunk = block % a.Chunks;
            int head = block / a.Chunks % a.Hkv;
            int s = block / a.Chunks / a.Hkv;
            int qStart, qLen, kvStart, kvLen;
            if (a.Sequences.Length == 0)
            {
                qStart = s * a.UniformQ;
                qLen = a.UniformQ;
                kvStart = s * a.UniformKv;
                kvLen = a.UniformKv;
            }
            else
            {
                qStart = a.Sequences[4 * s];
                qLen = a.Sequences[4 * s + 1];
                kvStart = a.Sequences[4 * s + 2];
                kvLen = a.Sequences[4 * s + 3];
            }
            int group = a.Hq / a.Hkv;
            int rows = qLen * group;
            if (rows == 0)
                return;
            int keyBegin = chunk * a.ChunkKeys;
            int keyEnd = kvLen < keyBegin + a.ChunkKeys ? kvLen : keyBegin + a.ChunkKeys;
            // Query i sees key t ≤ i + offset (causal), every key below kvLen otherwise.
            int offset = a.Causal != 0 ? kvLen - qLen : kvLen;

            var r0 = RowState.Start<TWiden>(a, 0, rows, group, offset, qStart, head, slice, words);
            var r1 = maxRows > 1 ? RowState.Start<TWiden>(a, 1, rows, group, offset, qStart, head, slice, words) : default;
            var r2 = maxRows > 2 ? RowState.Start<TWiden>(a, 2, rows, group, offset, qStart, head, slice, words) : default;
            var r3 = maxRows > 3 ? RowState.Start<TWiden>(a, 3, rows, group, offset, qStart, head, slice, words) : default;
            var r4 = maxRows > 4 ? RowState.Start<TWiden>(a, 4, rows, group, offset, qStart, head, slice, words) : default;
            var r5 = maxRows > 5 ? RowState.Start<TWiden>(a, 5, rows, group, offset, qStart, head, slice, words) : default;
            var r6 = maxRows > 6 ? RowState.Start<TWiden>(a, 6, rows, group, offset, qStart, head, slice, words) : default;
            var r7 = maxRows > 7 ? RowState.Start<TWiden>(a, 7, rows, group, offset, qStart, head, slice, words) : default;

            // Warp w reads steps w·Unroll … w·Unroll + Unroll − 1 of each round of Warps·Unroll steps. The next round's
            // loads are issued before this round's keys are used, so every warp keeps a round in flight while it computes.
            int roundKeys = Warps * Unroll * keysPerStep;
            int firstOfWarp = warp * Unroll * keysPerStep + sub;
            var round = RoundLoad.Issue(a, s, kvStart, head, keyBegin + firstOfWarp, keysPerStep, keyEnd, slice, words);
            for (int start = keyBegin; start < keyEnd; start += roundKeys)
            {
                var current = round;
                round = RoundLoad.Issue(a, s, kvStart, head, start + roundKeys + firstOfWarp, keysPerStep, keyEnd, slice, words);
                var k0 = Lane8.Widen<TWiden>(current.K0, 1f);
                var k1 = Lane8.Widen<TWiden>(current.K1, 1f);
                var k2 = Lane8.Widen<TWiden>(current.K2, 1f);
                var k3 = Lane8.Widen<TWiden>(current.K3, 1f);
                var v0 = Lane8.Widen<TWiden>(current.V0, 1f);
                var v1 = Lane8.Widen<TWiden>(current.V1, 1f);
                var v2 = Lane8.Widen<TWiden>(current.V2, 1f);
                var v3 = Lane8.Widen<TWiden>(current.V3, 1f);
                int t0 = current.First, t1 = t0 + keysPerStep, t2 = t0 + 2 * keysPerStep, t3 = t0 + 3 * keysPerStep;
                r0.AddRound(lanesPerKey, keyEnd, t0, t1, t2, t3, k0, k1, k2, k3, v0, v1, v2, v3);
                if (maxRows > 1) r1.AddRound(lanesPerKey, keyEnd, t0, t1, t2, t3, k0, k1, k2, k3, v0, v1, v2, v3);
                if (maxRows > 2) r2.AddRound(lanesPerKey, keyEnd, t0, t1, t2, t3, k0, k1, k2, k3, v0, v1, v2, v3);
                if (maxRows > 3) r3.AddRound(lanesPerKey, keyEnd, t0, t1, t2, t3, k0, k1, k2, k3, v0, v1, v2, v3);
                if (maxRows > 4) r4.AddRound(lanesPerKey, keyEnd, t0, t1, t2, t3, k0, k1, k2, k3, v0, v1, v2, v3);
                if (maxRows > 5) r5.AddRound(lanesPerKey, keyEnd, t0, t1, t2, t3, k0, k1, k2, k3, v0, v1, v2, v3);
                if (maxRows > 6) r6.AddRound(lanesPerKey, keyEnd, t0, t1, t2, t3, k0, k1, k2, k3, v0, v1, v2, v3);
                if (maxRows > 7) r7.AddRound(lanesPerKey, keyEnd, t0, t1, t2, t3, k0, k1, k2, k3, v0, v1, v2, v3);
            }

            // Lanes that read different keys of the same slice merge (xor over the key bits of the lane).
            for (int mask = lanesPerKey; mask < 32; mask <<= 1)
            {
                r0.MergeLanes(mask);
                if (maxRows > 1) r1.MergeLanes(mask);
                if (maxRows > 2) r2.MergeLanes(mask);
                if (maxRows > 3) r3.MergeLanes(mask);
                if (maxRows > 4) r4.MergeLanes(mask);
                if (maxRows > 5) r5.MergeLanes(mask);
                if (maxRows > 6) r6.MergeLanes(mask);
                if (maxRows > 7) r7.MergeLanes(mask);
            }

            // Then the warps, through shared memory: warp w's row r at [(w · maxRows + r) · (headDim + 2)].
            var shared = SharedMemory.GetDynamic<float>();
            if (sub == 0)
            {
                r0.Park(shared, warp, 0, maxRows, headDim, slice);
                if (maxRows > 1) r1.Park(shared, warp, 1, maxRows, headDim, slice);
                if (maxRows > 2) r2.Park(shared, warp, 2, maxRows, headDim, slice);
                if (maxRows > 3) r3.Park(shared, warp, 3, maxRows, headDim, slice);
                if (maxRows > 4) r4.Park(shared, warp, 4, maxRows, headDim, slice);
                if (maxRows > 5) r5.Park(shared, warp, 5, maxRows, headDim, slice);
                if (maxRows > 6) r6.Park(shared, warp, 6, maxRows, headDim, slice);
                if (maxRows > 7) r7.Park(shared, warp, 7, maxRows, headDim, slice);
            }
            Group.Barrier();
            // Warp w writes rows w, w + Warps, …: lanes of its first key step, one slice each.
            if (sub == 0)
            {
                for (int r = warp; r < rows; r += Warps)
                    WriteRow<TWiden>(a, shared, r, maxRows, headDim, slice, words, group, qStart, head, chunk);
            }
        }

        /// <summary>The cache row of key t of sequence s (through the block table for a paged cache); −1 past <paramref name="keyEnd"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static long KeyRow(DecodeArgs a, int s, int kvStart, int t, int keyEnd)
        {
            if (t >= keyEnd)
                return -1;
            if (a.PageSize <= 0)
                return (long)kvStart + t;
            // Pages of a power of two take a shift and a mask, others a division.
            int page = a.PageShift >= 0 ? t >> a.PageShift : t / a.PageSize;
            int within = a.PageShift >= 0 ? t & (a.PageSize - 1) : t - page * a.PageSize;
            return (long)a.BlockTable[(long)s * a.PagesPerSequence + page] * a.PageSize + within;
        }

        /// <summary>16 bytes of a key or value row, slice <paramref name="slice"/>; zeros for row −1.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static Word4 Load(ArrayView<Word4> source, long row, int hkv, int head, int slice, int words) =>
            row < 0 ? default : source[(row * hkv + head) * words + slice];

        /// <summary>The sum over the lanes of one key (xor over the low lane bits).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static float KeySum(float x, int lanesPerKey)
        {
            if (lanesPerKey > 1) x += Warp.ShuffleXor(x, 1);
            if (lanesPerKey > 2) x += Warp.ShuffleXor(x, 2);
            if (lanesPerKey > 4) x += Warp.ShuffleXor(x, 4);
            if (lanesPerKey > 8) x += Warp.ShuffleXor(x, 8);
            if (lanesPerKey > 16) x += Warp.ShuffleXor(x, 16);
            return x;
        }

        /// <summary>Row r's O slice and LSE from the warps' states in shared memory: merged in warp order, normalized, written.</summary>
        private static void WriteRow<TWiden>(
            DecodeArgs a, ArrayView<float> shared, int r, int maxRows, int headDim, int slice, int words, int group, int qStart, int head, int chunk)
            where TWiden : struct, IWiden16
        {
            var state = RowState.Unpark(shared, 0, r, maxRows, headDim, slice);
            for (int w = 1; w < Warps; w++)
                state.Merge(RowState.Unpark(shared, w, r, maxRows, headDim, slice));
            int qRow = qStart + r / group;
            int queryHead = head * group + r % group;
            bool seen = state.Sum > 0f || float.IsNaN(state.Sum);
            float inverse = seen ? 1f / state.Sum : 0f;
            // LSE in the natural base: (max + log2 sum) · ln 2 = max · ln 2 + ln sum; −∞ for a row that saw no key.
            float lse = seen ? state.Max * Ln2 + KernelMath.Log(state.Sum) : float.NegativeInfinity;
            if (a.Chunks == 1)
            {
                a.Output[((long)qRow * a.Hq + queryHead) * words + slice] = seen ? state.O.Narrow<TWiden>(inverse) : default;
                if (slice == 0)
                    a.Lse[(long)queryHead * a.QRows + qRow] = lse;
            }
            else
            {
                var o = seen ? state.O.Scaled(inverse) : default;
                o.Store(a.PartialOutput, (((long)chunk * a.QRows + qRow) * a.Hq + queryHead) * headDim + 8 * slice);
                if (slice == 0)
                    a.PartialLse[((long)chunk * a.Hq + queryHead) * a.QRows + qRow] = lse;
            }
        }

        /// <summary>
        /// Merges the chunks' partial results of one (query row, head, slice of 8): O = Σ_c exp(lse_c − LSE) · O_c with
        /// LSE = log Σ_c exp(lse_c); a chunk a row does not see (−∞) weighs nothing; a row no chunk sees gets O = 0, LSE = −∞.
        /// </summary>
        internal static void CombineKernel<TWiden>(Index1D index, DecodeArgs a, int words)
            where TWiden : struct, IWiden16
        {
            int slice = index % words;
            int queryHead = index / words % a.Hq;
            int qRow = index / words / a.Hq;
            float max = float.NegativeInfinity;
            for (int c = 0; c < a.Chunks; c++)
                max = KernelMath.MaxNaN(max, a.PartialLse[((long)c * a.Hq + queryHead) * a.QRows + qRow]);
            var o = default(Lane8);
            float sum = 0f;
            if (max != float.NegativeInfinity)
            {
                for (int c = 0; c < a.Chunks; c++)
                {
                    float lse = a.PartialLse[((long)c * a.Hq + queryHead) * a.QRows + qRow];
                    if (lse == float.NegativeInfinity)
                        continue;
                    float weight = KernelMath.Exp(lse - max);
                    sum += weight;
                    o = o.ScaleAdd(1f, weight, Lane8.Load(a.PartialOutput, (((long)c * a.QRows + qRow) * a.Hq + queryHead) * words * 8 + 8 * slice));
                }
            }
            bool seen = sum > 0f || float.IsNaN(sum);
            a.Output[((long)qRow * a.Hq + queryHead) * words + slice] = seen ? o.Narrow<TWiden>(1f / sum) : default;
            if (slice == 0)
                a.Lse[(long)queryHead * a.QRows + qRow] = seen ? max + KernelMath.Log(sum) : float.NegativeInfinity;
        }
    }

    /// <summary>A lane's four keys and values of one round (zeros past the chunk), and the first key's index.</summary>
    internal struct RoundLoad
    {
        public Word4 K0, K1, K2, K3, V0, V1, V2, V3;
        public int First;

        /// <summary>Issues the round's eight 16-byte loads: keys <paramref name="first"/> + u · <paramref name="keysPerStep"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static RoundLoad Issue(DecodeArgs a, int s, int kvStart, int head, int first, int keysPerStep, int keyEnd, int slice, int words)
        {
            long row0 = DecodeAttention.KeyRow(a, s, kvStart, first, keyEnd);
            long row1 = DecodeAttention.KeyRow(a, s, kvStart, first + keysPerStep, keyEnd);
            long row2 = DecodeAttention.KeyRow(a, s, kvStart, first + 2 * keysPerStep, keyEnd);
            long row3 = DecodeAttention.KeyRow(a, s, kvStart, first + 3 * keysPerStep, keyEnd);
            return new RoundLoad
            {
                K0 = DecodeAttention.Load(a.Key, row0, a.Hkv, head, slice, words),
                K1 = DecodeAttention.Load(a.Key, row1, a.Hkv, head, slice, words),
                K2 = DecodeAttention.Load(a.Key, row2, a.Hkv, head, slice, words),
                K3 = DecodeAttention.Load(a.Key, row3, a.Hkv, head, slice, words),
                V0 = DecodeAttention.Load(a.Value, row0, a.Hkv, head, slice, words),
                V1 = DecodeAttention.Load(a.Value, row1, a.Hkv, head, slice, words),
                V2 = DecodeAttention.Load(a.Value, row2, a.Hkv, head, slice, words),
                V3 = DecodeAttention.Load(a.Value, row3, a.Hkv, head, slice, words),
                First = first,
            };
        }
    }

    /// <summary>
    /// One row's state in one lane: its query slice (scaled to base 2), and the online softmax over the keys the lane
    /// has read: running max, running sum of 2^(s − max) and the output slice Σ 2^(s − max) · v.
    /// </summary>
    internal struct RowState
    {
        public Lane8 Q;
        public Lane8 O;
        public float Max;
        public float Sum;

        /// <summary>The last key the row sees: query r / group sees key t ≤ r / group + offset; −1 for no row.</summary>
        public int LastKey;

        /// <summary>Row r's query slice; zeros (and a row that sees nothing) past <paramref name="rows"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static RowState Start<TWiden>(DecodeArgs a, int r, int rows, int group, int offset, int qStart, int head, int slice, int words)
            where TWiden : struct, IWiden16
        {
            var state = new RowState { Max = float.NegativeInfinity, LastKey = -1 };
            if (r < rows)
            {
                state.LastKey = r / group + offset;
                long qRow = qStart + r / group;
                int queryHead = head * group + r % group;
                state.Q = Lane8.Widen<TWiden>(a.Query[(qRow * a.Hq + queryHead) * words + slice], a.ScaleLog2);
            }
            return state;
        }

        /// <summary>
        /// Adds a round of four keys: their scores (the lane's slice dotted, summed over the key's lanes), one new max and
        /// one rescale for the round, then each key the row sees. A key the row does not see is skipped, not weighted by 0.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddRound(
            int lanesPerKey, int keyEnd, int t0, int t1, int t2, int t3,
            in Lane8 k0, in Lane8 k1, in Lane8 k2, in Lane8 k3, in Lane8 v0, in Lane8 v1, in Lane8 v2, in Lane8 v3)
        {
            float s0 = DecodeAttention.KeySum(Q.Dot(k0), lanesPerKey);
            float s1 = DecodeAttention.KeySum(Q.Dot(k1), lanesPerKey);
            float s2 = DecodeAttention.KeySum(Q.Dot(k2), lanesPerKey);
            float s3 = DecodeAttention.KeySum(Q.Dot(k3), lanesPerKey);
            int last = LastKey < keyEnd - 1 ? LastKey : keyEnd - 1;
            bool sees0 = t0 <= last, sees1 = t1 <= last, sees2 = t2 <= last, sees3 = t3 <= last;
            float max = Max;
            if (sees0) max = KernelMath.MaxNaN(max, s0);
            if (sees1) max = KernelMath.MaxNaN(max, s1);
            if (sees2) max = KernelMath.MaxNaN(max, s2);
            if (sees3) max = KernelMath.MaxNaN(max, s3);
            if (max == float.NegativeInfinity)
                return;
            float alpha = TensorCore.Exp2(Max - max);
            Sum *= alpha;
            O = O.Scaled(alpha);
            Max = max;
            if (sees0) Accumulate(TensorCore.Exp2(s0 - max), v0);
            if (sees1) Accumulate(TensorCore.Exp2(s1 - max), v1);
            if (sees2) Accumulate(TensorCore.Exp2(s2 - max), v2);
            if (sees3) Accumulate(TensorCore.Exp2(s3 - max), v3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Accumulate(float p, in Lane8 v)
        {
            Sum += p;
            O = O.ScaleAdd(1f, p, v);
        }

        /// <summary>Merges another state of the same row (over other keys) into this one.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Merge(in RowState other)
        {
            float max = KernelMath.MaxNaN(Max, other.Max);
            if (max == float.NegativeInfinity)
                return;
            float alpha = TensorCore.Exp2(Max - max);
            float beta = TensorCore.Exp2(other.Max - max);
            Sum = Sum * alpha + other.Sum * beta;
            O = O.ScaleAdd(alpha, beta, other.O);
            Max = max;
        }

        /// <summary>Merges the state of lane (this lane xor <paramref name="mask"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void MergeLanes(int mask)
        {
            var other = new RowState
            {
                O = O.ShuffleXor(mask),
                Max = Warp.ShuffleXor(Max, mask),
                Sum = Warp.ShuffleXor(Sum, mask),
            };
            Merge(other);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Park(ArrayView<float> shared, int warp, int r, int maxRows, int headDim, int slice)
        {
            long at = (long)(warp * maxRows + r) * (headDim + 2);
            O.Store(shared, at + 8 * slice);
            if (slice == 0)
            {
                shared[at + headDim] = Max;
                shared[at + headDim + 1] = Sum;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static RowState Unpark(ArrayView<float> shared, int warp, int r, int maxRows, int headDim, int slice)
        {
            long at = (long)(warp * maxRows + r) * (headDim + 2);
            return new RowState
            {
                O = Lane8.Load(shared, at + 8 * slice),
                Max = shared[at + headDim],
                Sum = shared[at + headDim + 1],
            };
        }
    }
}
