using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.IR.Intrinsics;
using ILGPU.Runtime.Cuda;

namespace XFormers.Kernels
{
    /// <summary>
    /// Warp-level tensor-core building blocks for the generated fp16/bf16 kernels: inline PTX on CUDA
    /// (<c>mma.sync.m16n8k16</c>, <c>ex2.approx</c>, <c>cvt.rn.f16x2</c>), each with a scalar twin that computes the same
    /// thing (the mma's through a shared exchange: the kernels pass it a few words of group shared memory), so the kernels
    /// also run (slowly) on ILGPU's CPU accelerator with 32-lane warps.
    /// <c>ldmatrix</c> and <c>cp.async</c> take shared-memory addresses, which ILGPU 1.5.3 does not give kernels for their
    /// views (LoadEffectiveAddressAsPtr is host-only, Unsafe.AsPointer is not supported). Its PTX backend does declare a
    /// kernel's dynamic shared memory under one fixed name, <c>__dyn_shared_alloca</c> (PTXCodeGenerator), so inline PTX
    /// reads that symbol's address (<see cref="DynamicSharedBase"/>) for ldmatrix. No cp.async: with one in a kernel, ptxas
    /// keeps every <c>.local</c> variable in memory (the CudaAsm.EmitRef wrappers it otherwise promotes to registers; checked
    /// with ptxas -v, 4–7 KB stack frames), so tiles are staged global → registers → shared.
    /// Fragment layouts are PTX ISA §9.7.13.4.8 (m16n8k16): lane = 4·g + c; A holds rows g, g+8 and columns 2c, 2c+1
    /// (+8); B holds columns (n) g and rows (k) 2c, 2c+1 (+8); C holds rows g, g+8 and columns 2c, 2c+1.
    /// </summary>
    public static class TensorCore
    {
        /// <summary>log2(e): the kernels keep scores in the base-2 domain and use ex2.</summary>
        public const float Log2E = 1.4426950408889634f;

        /// <summary>
        /// D += A·B for one 16×8×16 tile, fp16 inputs, fp32 accumulators. <paramref name="exchange"/>: the kernel's
        /// <see cref="ExchangeWordsPerThread"/> words a thread of shared memory, used by the CPU twin only.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void MmaM16N8K16(
            ref float d0, ref float d1, ref float d2, ref float d3,
            uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ArrayView<uint> exchange) =>
            Mma(ref d0, ref d1, ref d2, ref d3, a0, a1, a2, a3, b0, b1, exchange, bfloat16: false);

        /// <summary>D += A·B for one 16×8×16 tile, bf16 inputs, fp32 accumulators.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void MmaM16N8K16Bf16(
            ref float d0, ref float d1, ref float d2, ref float d3,
            uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ArrayView<uint> exchange) =>
            Mma(ref d0, ref d1, ref d2, ref d3, a0, a1, a2, a3, b0, b1, exchange, bfloat16: true);

        /// <summary>
        /// mma.sync.aligned.m16n8k16.row.col.f32 (PTX ISA 9.7.14.5.8) with fp16 or bf16 inputs, or its scalar twin. Both callers
        /// pass <paramref name="bfloat16"/> as a constant, so one branch is left once ILGPU inlines them.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        private static void Mma(
            ref float d0, ref float d1, ref float d2, ref float d3,
            uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ArrayView<uint> exchange, bool bfloat16)
        {
            if (CudaAsm.IsSupported)
                MmaPtx(ref d0, ref d1, ref d2, ref d3, a0, a1, a2, a3, b0, b1, exchange, bfloat16);
            else
                MmaCpu(ref d0, ref d1, ref d2, ref d3, a0, a1, a2, a3, b0, b1, exchange, bfloat16);
        }

        /// <summary>The instruction must be a literal (ILGPU reads it while it builds the kernel), hence one EmitRef per input type.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void MmaPtx(
            ref float d0, ref float d1, ref float d2, ref float d3,
            uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ArrayView<uint> exchange, bool bfloat16)
        {
            Ref<float> c0 = d0, c1 = d1, c2 = d2, c3 = d3;
            Input<uint> x0 = a0, x1 = a1, x2 = a2, x3 = a3, y0 = b0, y1 = b1;
            if (bfloat16)
            {
                CudaAsm.EmitRef(
                    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};",
                    ref c0, ref c1, ref c2, ref c3, ref x0, ref x1, ref x2, ref x3, ref y0, ref y1);
            }
            else
            {
                CudaAsm.EmitRef(
                    "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};",
                    ref c0, ref c1, ref c2, ref c3, ref x0, ref x1, ref x2, ref x3, ref y0, ref y1);
            }
            (d0, d1, d2, d3) = (c0.Value, c1.Value, c2.Value, c3.Value);
        }

        /// <summary>
        /// The shared-window address of the kernel's dynamic shared memory (<c>__dyn_shared_alloca</c>, the name ILGPU's PTX
        /// backend declares it under when the kernel calls <c>SharedMemory.GetDynamic</c>); 0 on the CPU, where the twins
        /// index views instead.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static uint DynamicSharedBase() => CudaAsm.IsSupported ? DynamicSharedBasePtx() : DynamicSharedBaseCpu();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static uint DynamicSharedBasePtx()
        {
            CudaAsm.Emit("mov.u32 %0, __dyn_shared_alloca;", out uint address);
            return address;
        }

        private static uint DynamicSharedBaseCpu() => 0;

        /// <summary>
        /// Four 8×8 matrices of 16-bit elements from a row-major shared tile (<paramref name="pitch"/> halves a row, starting at half
        /// <paramref name="tileHalf"/>): matrix i has its origin at row <paramref name="row"/> + (i &amp; 1)·<paramref name="rowStep1"/>
        /// + (i &gt;&gt; 1)·<paramref name="rowStep2"/>, column <paramref name="column"/> + (i &amp; 1)·<paramref name="columnStep1"/>
        /// + (i &gt;&gt; 1)·<paramref name="columnStep2"/>; lane 4g + c receives elements (g, 2c) and (g, 2c + 1) of matrix i in
        /// register i (<c>ldmatrix.x4</c>). Rows must start 16-byte aligned.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void LoadMatrixX4(
            ArrayView<uint> shared, uint sharedBase, int tileHalf, int pitch, int row, int column,
            int rowStep1, int columnStep1, int rowStep2, int columnStep2,
            out uint r0, out uint r1, out uint r2, out uint r3) =>
            LoadMatrices(shared, sharedBase, tileHalf, pitch, row, column, rowStep1, columnStep1, rowStep2, columnStep2, transposed: false, out r0, out r1, out r2, out r3);

        /// <summary>
        /// As <see cref="LoadMatrixX4"/>, each matrix transposed (<c>ldmatrix.x4.trans</c>): lane 4g + c receives elements
        /// (2c, g) and (2c + 1, g) of matrix i in register i, the low half from row 2c.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void LoadMatrixX4Transposed(
            ArrayView<uint> shared, uint sharedBase, int tileHalf, int pitch, int row, int column,
            int rowStep1, int columnStep1, int rowStep2, int columnStep2,
            out uint r0, out uint r1, out uint r2, out uint r3) =>
            LoadMatrices(shared, sharedBase, tileHalf, pitch, row, column, rowStep1, columnStep1, rowStep2, columnStep2, transposed: true, out r0, out r1, out r2, out r3);

        /// <summary>Both ldmatrix forms; <paramref name="transposed"/> is a constant at every call, so each kernel keeps one.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        private static void LoadMatrices(
            ArrayView<uint> shared, uint sharedBase, int tileHalf, int pitch, int row, int column,
            int rowStep1, int columnStep1, int rowStep2, int columnStep2, bool transposed,
            out uint r0, out uint r1, out uint r2, out uint r3)
        {
            if (CudaAsm.IsSupported)
            {
                LoadMatricesPtx(
                    shared, sharedBase, tileHalf, pitch, row, column, rowStep1, columnStep1, rowStep2, columnStep2, transposed,
                    out r0, out r1, out r2, out r3);
            }
            else
            {
                LoadMatricesCpu(
                    shared, sharedBase, tileHalf, pitch, row, column, rowStep1, columnStep1, rowStep2, columnStep2, transposed,
                    out r0, out r1, out r2, out r3);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void LoadMatricesPtx(
            ArrayView<uint> shared, uint sharedBase, int tileHalf, int pitch, int row, int column,
            int rowStep1, int columnStep1, int rowStep2, int columnStep2, bool transposed,
            out uint r0, out uint r1, out uint r2, out uint r3)
        {
            // Lane 8i + r gives the address of row r of matrix i.
            int lane = Warp.LaneIdx, i = lane >> 3;
            int r = row + (i & 1) * rowStep1 + (i >> 1) * rowStep2 + (lane & 7);
            int c = column + (i & 1) * columnStep1 + (i >> 1) * columnStep2;
            Output<uint> x0 = default, x1 = default, x2 = default, x3 = default;
            Input<uint> address = sharedBase + 2u * (uint)(tileHalf + r * pitch + c);
            if (transposed)
                CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];", ref x0, ref x1, ref x2, ref x3, ref address);
            else
                CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];", ref x0, ref x1, ref x2, ref x3, ref address);
            (r0, r1, r2, r3) = (x0.Value, x1.Value, x2.Value, x3.Value);
        }

        private static void LoadMatricesCpu(
            ArrayView<uint> shared, uint sharedBase, int tileHalf, int pitch, int row, int column,
            int rowStep1, int columnStep1, int rowStep2, int columnStep2, bool transposed,
            out uint r0, out uint r1, out uint r2, out uint r3)
        {
            if (transposed)
            {
                int lane = Warp.LaneIdx, g = lane >> 2, c = 2 * (lane & 3);
                int first = tileHalf + (row + c) * pitch + column + g;
                r0 = HalfPair(shared, first, pitch);
                r1 = HalfPair(shared, first + rowStep1 * pitch + columnStep1, pitch);
                r2 = HalfPair(shared, first + rowStep2 * pitch + columnStep2, pitch);
                r3 = HalfPair(shared, first + (rowStep1 + rowStep2) * pitch + columnStep1 + columnStep2, pitch);
            }
            else
            {
                int lane = Warp.LaneIdx, g = lane >> 2, c = 2 * (lane & 3);
                int first = tileHalf + (row + g) * pitch + column + c;
                r0 = shared[first >> 1];
                r1 = shared[(first + rowStep1 * pitch + columnStep1) >> 1];
                r2 = shared[(first + rowStep2 * pitch + columnStep2) >> 1];
                r3 = shared[(first + (rowStep1 + rowStep2) * pitch + columnStep1 + columnStep2) >> 1];
            }
        }

        /// <summary>The 16-bit elements at half <paramref name="half"/> (low) and one row below it (high) of a shared tile.</summary>
        private static uint HalfPair(ArrayView<uint> shared, int half, int pitch) =>
            HalfAt(shared, half) | (HalfAt(shared, half + pitch) << 16);

        private static uint HalfAt(ArrayView<uint> shared, int half) => (shared[half >> 1] >> (16 * (half & 1))) & 0xFFFFu;

        /// <summary>2^x (<c>ex2.approx.ftz.f32</c>: 2 ulp, subnormals flushed; 2^-∞ = 0).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static float Exp2(float x) => CudaAsm.IsSupported ? Exp2Ptx(x) : Exp2Cpu(x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float Exp2Ptx(float x)
        {
            Output<float> result = default;
            Input<float> input = x;
            CudaAsm.EmitRef("ex2.approx.ftz.f32 %0, %1;", ref result, ref input);
            return result.Value;
        }

        private static float Exp2Cpu(float x) => System.MathF.Exp(x * 0.6931471805599453f);

        /// <summary>Two floats rounded to fp16 (nearest even) in one register: <paramref name="low"/> in bits 0–15.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static uint PackHalf2(float low, float high) => CudaAsm.IsSupported ? PackHalf2Ptx(low, high) : PackHalf2Cpu(low, high);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static uint PackHalf2Ptx(float low, float high)
        {
            Output<uint> result = default;
            Input<float> lo = low, hi = high;
            CudaAsm.EmitRef("cvt.rn.f16x2.f32 %0, %1, %2;", ref result, ref hi, ref lo);
            return result.Value;
        }

        private static uint PackHalf2Cpu(float low, float high) => Interop.FloatAsInt(ElementMath.ToHalf(low)) | ((uint)Interop.FloatAsInt(ElementMath.ToHalf(high)) << 16);

        /// <summary>Two floats rounded to bf16 (nearest even) in one register: <paramref name="low"/> in bits 0–15.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        [IntrinsicImplementation]
        public static uint PackBFloat162(float low, float high) => CudaAsm.IsSupported ? PackBFloat162Ptx(low, high) : PackBFloat162Cpu(low, high);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static uint PackBFloat162Ptx(float low, float high)
        {
            Output<uint> result = default;
            Input<float> lo = low, hi = high;
            CudaAsm.EmitRef("cvt.rn.bf16x2.f32 %0, %1, %2;", ref result, ref hi, ref lo);
            return result.Value;
        }

        private static uint PackBFloat162Cpu(float low, float high) => ElementMath.ToBFloat16(low).RawValue | ((uint)ElementMath.ToBFloat16(high).RawValue << 16);

        /// <summary>
        /// The passes of a generated tensor-core kernel. Every group runs the first. A group that finds a NaN in the outputs it
        /// wrote (a non-finite operand element times the exact 0 of a masked P or dS gives one in rows that cannot see it) runs
        /// its tile again with the staged operands' non-finite elements zeroed, overwriting its outputs; the forward and dV
        /// then run it once more with 0/1 indicators and write NaN where their product is not 0 (docs/RELIABILITY.md).
        /// </summary>
        public const int FastPass = 0, SanitizePass = 1, PoisonPass = 2;

        /// <summary>
        /// Four fp16 elements (element e in bits 16e … 16e + 15) for a later pass: each non-finite one zeroed, or with
        /// <paramref name="indicators"/> every element 1 where it is not finite and 0 where it is.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ulong RewriteNonFiniteHalf4(ulong word, bool indicators) => RewriteNonFinite(word, indicators, bfloat16: false);

        /// <summary>Four bf16 elements for a later pass, as <see cref="RewriteNonFiniteHalf4"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ulong RewriteNonFiniteBFloat164(ulong word, bool indicators) => RewriteNonFinite(word, indicators, bfloat16: true);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static ulong RewriteNonFinite(ulong word, bool indicators, bool bfloat16)
        {
            // An element is not finite when its exponent field is all ones: adding the field's lowest bit then carries into
            // the element's bit 15, and never past it.
            ulong exponent = bfloat16 ? 0x7F80_7F80_7F80_7F80ul : 0x7C00_7C00_7C00_7C00ul;
            ulong lowest = bfloat16 ? 0x0080_0080_0080_0080ul : 0x0400_0400_0400_0400ul;
            ulong flags = (((word & exponent) + lowest) >> 15) & 0x0001_0001_0001_0001ul;
            return indicators ? flags * (bfloat16 ? 0x3F80ul : 0x3C00ul) : word & ~(flags * 0xFFFFul);
        }

        /// <summary>1 where <paramref name="x"/> is not 0 (NaN included), else 0: a P or Pᵀ entry in the poison pass.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Indicator(float x) => x != 0f ? 1f : 0f;

        /// <summary>
        /// A pair of fp16 outputs (<paramref name="low"/>'s in bits 0–15) with a NaN in place of each whose poison-pass count
        /// is not 0.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint PoisonHalf2(uint pair, float low, float high) => Poison(pair, low, high, 0x7E00u);

        /// <summary>A pair of bf16 outputs with a NaN in place of each whose poison-pass count is not 0.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint PoisonBFloat162(uint pair, float low, float high) => Poison(pair, low, high, 0x7FC0u);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static uint Poison(uint pair, float low, float high, uint nan)
        {
            if (low != 0f)
                pair = (pair & 0xFFFF_0000u) | nan;
            if (high != 0f)
                pair = (pair & 0x0000_FFFFu) | (nan << 16);
            return pair;
        }

        /// <summary>The dot product of four fp16 values with four others, each packed in 8 bytes (element e in bits 16e … 16e + 15).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Dot4Half(ulong x, ulong y) => Dot4(x, y, bfloat16: false);

        /// <summary>The dot product of four bf16 values with four others, each packed in 8 bytes.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Dot4BFloat16(ulong x, ulong y) => Dot4(x, y, bfloat16: true);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float Dot4(ulong x, ulong y, bool bfloat16) =>
            Widen((ushort)x, bfloat16) * Widen((ushort)y, bfloat16)
            + Widen((ushort)(x >> 16), bfloat16) * Widen((ushort)(y >> 16), bfloat16)
            + Widen((ushort)(x >> 32), bfloat16) * Widen((ushort)(y >> 32), bfloat16)
            + Widen((ushort)(x >> 48), bfloat16) * Widen((ushort)(y >> 48), bfloat16);

        private static float Low(uint pair, bool bfloat16) => Widen((ushort)(pair & 0xFFFF), bfloat16);

        private static float High(uint pair, bool bfloat16) => Widen((ushort)(pair >> 16), bfloat16);

        private static float Widen(ushort bits, bool bfloat16) =>
            bfloat16 ? Interop.IntAsFloat((uint)bits << 16) : (float)Interop.IntAsFloat(bits);

        /// <summary>
        /// Words of group shared memory per thread that the scalar twins need: each lane parks its six fragment registers there so the
        /// others can read them after one warp barrier (the CPU accelerator runs a shuffle as four barriers; an mma
        /// twin built from shuffles took 32 of them). CUDA never touches it: the twin is dead code there, and the
        /// allocation with it.
        /// </summary>
        public const int ExchangeWordsPerThread = 6;

        /// <summary>
        /// The scalar twin of mma.sync: every lane writes its A and B registers to its warp's part of
        /// <paramref name="exchange"/>, and after a warp barrier reads the two A rows and two B columns it needs.
        /// </summary>
        private static void MmaCpu(
            ref float d0, ref float d1, ref float d2, ref float d3,
            uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ArrayView<uint> exchange, bool bfloat16)
        {
            int lane = Warp.LaneIdx;
            int g = lane >> 2, c = lane & 3;
            int warp = (Group.IdxX >> 5) * 32 * ExchangeWordsPerThread;
            int own = warp + ExchangeWordsPerThread * lane;
            exchange[own] = a0;
            exchange[own + 1] = a1;
            exchange[own + 2] = a2;
            exchange[own + 3] = a3;
            exchange[own + 4] = b0;
            exchange[own + 5] = b1;
            Warp.Barrier();
            for (int q = 0; q < 4; q++)
            {
                // Lane 4g + q holds A[g][2q..2q+1] (a0), A[g+8][2q..] (a1), A[g][2q+8..] (a2), A[g+8][2q+8..] (a3).
                int aLane = warp + ExchangeWordsPerThread * (4 * g + q);
                uint ra0 = exchange[aLane], ra1 = exchange[aLane + 1], ra2 = exchange[aLane + 2], ra3 = exchange[aLane + 3];
                // Lane 4n + q holds B[2q..2q+1][n] (b0) and B[2q+8..][n] (b1); this lane needs columns n = 2c and 2c+1.
                int bLane0 = warp + ExchangeWordsPerThread * (8 * c + q) + 4, bLane1 = warp + ExchangeWordsPerThread * (8 * c + 4 + q) + 4;
                uint x0 = exchange[bLane0], x1 = exchange[bLane0 + 1];
                uint y0 = exchange[bLane1], y1 = exchange[bLane1 + 1];
                d0 += Low(ra0, bfloat16) * Low(x0, bfloat16) + High(ra0, bfloat16) * High(x0, bfloat16)
                    + Low(ra2, bfloat16) * Low(x1, bfloat16) + High(ra2, bfloat16) * High(x1, bfloat16);
                d1 += Low(ra0, bfloat16) * Low(y0, bfloat16) + High(ra0, bfloat16) * High(y0, bfloat16)
                    + Low(ra2, bfloat16) * Low(y1, bfloat16) + High(ra2, bfloat16) * High(y1, bfloat16);
                d2 += Low(ra1, bfloat16) * Low(x0, bfloat16) + High(ra1, bfloat16) * High(x0, bfloat16)
                    + Low(ra3, bfloat16) * Low(x1, bfloat16) + High(ra3, bfloat16) * High(x1, bfloat16);
                d3 += Low(ra1, bfloat16) * Low(y0, bfloat16) + High(ra1, bfloat16) * High(y0, bfloat16)
                    + Low(ra3, bfloat16) * Low(y1, bfloat16) + High(ra3, bfloat16) * High(y1, bfloat16);
            }
            // Nobody overwrites the exchange (the next mma) before every lane has read it.
            Warp.Barrier();
        }
    }
}
