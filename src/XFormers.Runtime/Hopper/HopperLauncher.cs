using System;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using XFormers.Dsl;
using XFormers.Kernels;

namespace XFormers.Hopper
{
    /// <summary>
    /// Runs a variant's sm_90a modules (the forward; the backward's dK/dV and dQ passes) on ILGPU's CUDA context, buffers
    /// and stream: compiles the PTX through the driver once per context (the driver's JIT cache keeps the result for later
    /// processes), raises each kernel's dynamic shared-memory limit, encodes the tensor maps and launches. A call it cannot
    /// serve (not compute capability 9.0, <c>XFORMERS_BACKEND=ilgpu</c>, an unaligned view, an empty tensor) takes the ILGPU
    /// kernels instead.
    /// </summary>
    internal static unsafe class HopperLauncher
    {
        /// <summary><c>XFORMERS_BACKEND=ilgpu</c> keeps every launch on the ILGPU kernels (for comparison).</summary>
        public const string BackendVariable = "XFORMERS_BACKEND";

        private static readonly bool ForcedOff =
            string.Equals(Environment.GetEnvironmentVariable(BackendVariable), "ilgpu", StringComparison.OrdinalIgnoreCase);

        private static readonly ConditionalWeakTable<Accelerator, DeviceState> Devices = new();

        /// <summary>For the device harness: always the variant's first module, whatever the grid (its conformance checks both).</summary>
        internal static bool ForceFirstModule { get; set; }

        /// <summary>For the device harness: the variant's small-grid module where it has one, whatever the grid (to time both).</summary>
        internal static bool ForceSmallGrid { get; set; }

        /// <summary>Whether launches on <paramref name="accelerator"/> may take the sm_90a modules.</summary>
        public static bool IsAvailable(Accelerator accelerator) =>
            !ForcedOff && accelerator is CudaAccelerator && State(accelerator).IsHopper;

        /// <summary>Milliseconds spent loading modules on this accelerator (the driver's JIT, or its cache when warm).</summary>
        public static double CompileMilliseconds(Accelerator accelerator) => State(accelerator).CompileMilliseconds;

        /// <summary>Compiles and loads the module now (otherwise on its first launch).</summary>
        public static void Prepare(Accelerator accelerator, HopperForwardModule module)
        {
            if (!IsAvailable(accelerator))
                return;
            Function(accelerator, module);
            if (module.SmallGrid is { } small)
                Function(accelerator, small);
        }

        /// <summary>Compiles and loads the backward module now (otherwise on its first launch).</summary>
        public static void Prepare(Accelerator accelerator, HopperBackwardModule module)
        {
            if (!IsAvailable(accelerator))
                return;
            BackwardFunction(accelerator, module, keysAndValues: true);
            BackwardFunction(accelerator, module, keysAndValues: false);
            if (module.ValuesEntryPoint is { } valuesEntry)
                Function(accelerator, module.Hash, module.Ptx, valuesEntry, module.ValuesSharedBytes);
        }

        /// <summary>Whether the sm_90a backward can take this call (16-bit, non-empty, no dropout, 16-byte aligned operands).</summary>
        public static bool CanLaunchBackward<T>(in AttentionArgs<T> a)
            where T : unmanaged =>
            CanLaunchForward(a) && Pointer(a.dO) % 16 == 0;

        /// <summary>
        /// Whether the sm_90a kernels can take this call's forward operands: 16-bit, non-empty, a positive finite scale, no
        /// dropout (the modules have no dropout code: a call that drops scores runs the ILGPU kernels, forward and backward),
        /// and Q, K, V 16-byte aligned (tensor maps need it).
        /// </summary>
        internal static bool CanLaunchForward<T>(in AttentionArgs<T> a)
            where T : unmanaged =>
            sizeof(T) == 2 && a.Batch > 0 && a.Mq > 0 && a.Mkv > 0 && a.Scale > 0f && !float.IsInfinity(a.Scale) && a.DropoutThreshold == 0u &&
            Pointer(a.Q) % 16 == 0 && Pointer(a.K) % 16 == 0 && Pointer(a.V) % 16 == 0;

        /// <summary>
        /// Launches the backward's dK/dV pass, then its dQ pass, on the default stream (Delta must already be in
        /// <c>a.Delta</c>). The caller has checked <see cref="IsAvailable"/> and <see cref="CanLaunchBackward{T}"/>. A variant
        /// with mods passes <paramref name="mods"/> and, with a mask mod, each pass's block list (by key tile for dK/dV, by
        /// query tile for dQ; <see cref="BlockMasks"/>).
        /// </summary>
        public static void LaunchBackward<T>(
            Accelerator accelerator, HopperBackwardModule module, DType dtype, in AttentionArgs<T> a, bool local, Action<string>? observer = null,
            bool mods = false, BlockMasks.ListLayout keysList = default, BlockMasks.ListLayout queriesList = default)
            where T : unmanaged
        {
            var kvFunction = BackwardFunction(accelerator, module, keysAndValues: true);
            var qFunction = BackwardFunction(accelerator, module, keysAndValues: false);
            var maps = (byte*)NativeMemory.AlignedAlloc(4 * 128 + ModArgsBytes, 64);
            try
            {
                int dataType = dtype == DType.BFloat16 ? CudaDriver.TensorMapBFloat16 : CudaDriver.TensorMapFloat16;
                ulong q = Pointer(a.Q), dO = Pointer(a.dO), k = Pointer(a.K), v = Pointer(a.V);

                // The kernels' parameters, in HopperBackwardEmitter.Parameters' order; the four tensor maps first.
                // A variant with mods adds five (the arguments, the block list and its layout), a local mask the window last.
                int count = 26 + (mods ? 5 : 0) + (local ? 1 : 0);
                var values = stackalloc ulong[32];
                var parameters = stackalloc void*[32];
                for (int i = 0; i < 4; i++)
                    parameters[i] = maps + 128 * i;
                values[4] = Pointer(a.Lse);
                values[5] = Pointer(a.Delta);
                values[6] = Pointer(a.dQ);
                values[7] = Pointer(a.dK);
                values[8] = Pointer(a.dV);
                values[9] = Pointer(a.dBias);
                values[10] = Pointer(a.Bias);
                values[11] = (ulong)a.BiasStrideB;
                values[12] = (ulong)a.BiasStrideH;
                values[13] = (ulong)a.BiasStrideM;
                values[14] = (ulong)a.BiasStrideN;
                values[15] = Pointer(a.AlibiSlopes);
                values[16] = Pointer(a.QSegment);
                values[17] = Pointer(a.KvSegment);
                values[18] = Pointer(a.QStart);
                values[19] = Pointer(a.KvStart);
                values[20] = (uint)a.Mq;
                values[21] = (uint)a.Mkv;
                values[22] = (uint)a.Hq;
                values[23] = (uint)Math.Max(1, a.GroupSize);
                *(float*)&values[24] = a.Scale;
                *(float*)&values[25] = a.Scale * 1.44269504088896341f;
                for (int i = 4; i < count; i++)
                    parameters[i] = &values[i];
                if (mods)
                {
                    var blob = maps + 4 * 128;
                    WriteModArgs(blob, a.Mod);
                    parameters[26] = blob;
                    SetBlockList(values, 27, keysList);
                }
                if (local)
                    values[count - 1] = (uint)a.Window;

                var stream = ((CudaStream)accelerator.DefaultStream).StreamPtr;
                CudaDriver.Check(CudaDriver.cuCtxSetCurrent(accelerator.NativePtr), "cuCtxSetCurrent");

                // dK/dV: K and V resident (KeyRows), Q and dO streamed (QueryTileRows).
                EncodeRows(maps, dataType, q, module.HeadDim, a.Hq, a.Mq, a.Batch, module.QueryTileRows);
                EncodeRows(maps + 128, dataType, dO, module.HeadDim, a.Hq, a.Mq, a.Batch, module.QueryTileRows);
                EncodeRows(maps + 256, dataType, k, module.HeadDim, a.Hkv, a.Mkv, a.Batch, module.KeyRows);
                EncodeRows(maps + 384, dataType, v, module.HeadDim, a.Hkv, a.Mkv, a.Batch, module.KeyRows);
                uint kvBlocks = (uint)((a.Mkv + module.KeyRows - 1) / module.KeyRows);
                CudaDriver.Check(
                    CudaDriver.cuLaunchKernel(kvFunction, kvBlocks, (uint)a.Hkv, (uint)a.Batch, (uint)module.KeysAndValuesThreads, 1, 1,
                        (uint)module.KeysAndValuesSharedBytes, stream, parameters, null),
                    "cuLaunchKernel " + module.KeysAndValuesEntryPoint);
                if (module.ValuesEntryPoint is { } valuesEntry)
                {
                    var vFunction = Function(accelerator, module.Hash, module.Ptx, valuesEntry, module.ValuesSharedBytes);
                    CudaDriver.Check(
                        CudaDriver.cuLaunchKernel(vFunction, kvBlocks, (uint)a.Hkv, (uint)a.Batch, (uint)module.KeysAndValuesThreads, 1, 1,
                            (uint)module.ValuesSharedBytes, stream, parameters, null),
                        "cuLaunchKernel " + valuesEntry);
                }
                observer?.Invoke("dK/dV");

                // dQ: Q and dO resident (QueryRows), K and V streamed (KeyTileRows), its own block list. The launch has copied
                // the parameters.
                if (mods)
                    SetBlockList(values, 27, queriesList);
                EncodeRows(maps, dataType, q, module.HeadDim, a.Hq, a.Mq, a.Batch, module.QueryRows);
                EncodeRows(maps + 128, dataType, dO, module.HeadDim, a.Hq, a.Mq, a.Batch, module.QueryRows);
                EncodeRows(maps + 256, dataType, k, module.HeadDim, a.Hkv, a.Mkv, a.Batch, module.KeyTileRows);
                EncodeRows(maps + 384, dataType, v, module.HeadDim, a.Hkv, a.Mkv, a.Batch, module.KeyTileRows);
                uint qBlocks = (uint)((a.Mq + module.QueryRows - 1) / module.QueryRows);
                CudaDriver.Check(
                    CudaDriver.cuLaunchKernel(qFunction, qBlocks, (uint)a.Hq, (uint)a.Batch, (uint)module.QueriesThreads, 1, 1,
                        (uint)module.QueriesSharedBytes, stream, parameters, null),
                    "cuLaunchKernel " + module.QueriesEntryPoint);
                observer?.Invoke("dQ");
            }
            finally
            {
                NativeMemory.AlignedFree(maps);
            }
        }

        /// <summary>Launches the forward; false when this call must take the ILGPU kernels instead.</summary>
        public static bool TryLaunchForward<T>(
            Accelerator accelerator, HopperForwardModule module, DType dtype, in AttentionArgs<T> a, bool mods = false, bool local = false)
            where T : unmanaged
        {
            if (!IsAvailable(accelerator) || !CanLaunchForward(a))
                return false;
            ulong q = Pointer(a.Q), k = Pointer(a.K), v = Pointer(a.V);

            module = Pick(module, a.Mq, a.Hq * a.Batch, accelerator.NumMultiprocessors);
            var function = Function(accelerator, module);
            var maps = (byte*)NativeMemory.AlignedAlloc(3 * 128 + ModArgsBytes, 64);
            try
            {
                int dataType = dtype == DType.BFloat16 ? CudaDriver.TensorMapBFloat16 : CudaDriver.TensorMapFloat16;
                EncodeRows(maps, dataType, q, module.HeadDim, a.Hq, a.Mq, a.Batch, module.BlockM);
                EncodeRows(maps + 128, dataType, k, module.HeadDim, a.Hkv, a.Mkv, a.Batch, module.BlockN);
                EncodeRows(maps + 256, dataType, v, module.HeadDim, a.Hkv, a.Mkv, a.Batch, module.BlockN);

                // The kernel's parameters, in HopperForwardEmitter's order (a variant with mods adds five, a local mask the window).
                int count = (mods ? 25 : 20) + (local ? 1 : 0);
                var values = stackalloc ulong[26];
                var parameters = stackalloc void*[26];
                parameters[0] = maps;
                parameters[1] = maps + 128;
                parameters[2] = maps + 256;
                values[3] = Pointer(a.O);
                values[4] = Pointer(a.Lse);
                values[5] = Pointer(a.Bias);
                values[6] = (ulong)a.BiasStrideB;
                values[7] = (ulong)a.BiasStrideH;
                values[8] = (ulong)a.BiasStrideM;
                values[9] = (ulong)a.BiasStrideN;
                values[10] = Pointer(a.AlibiSlopes);
                values[11] = Pointer(a.QSegment);
                values[12] = Pointer(a.QStart);
                values[13] = Pointer(a.KvStart);
                values[14] = (uint)a.Mq;
                values[15] = (uint)a.Mkv;
                values[16] = (uint)a.Hq;
                values[17] = (uint)Math.Max(1, a.GroupSize);
                *(float*)&values[18] = a.Scale;
                *(float*)&values[19] = a.Scale * 1.44269504088896341f;
                for (int i = 3; i < count; i++)
                    parameters[i] = &values[i];
                if (mods)
                {
                    var blob = maps + 3 * 128;
                    WriteModArgs(blob, a.Mod);
                    parameters[20] = blob;
                    // The block list's rows: (b · rows_b + h · rows_h + tile) · (cols + 1) ints (strides 0 when the mask reads no b or h).
                    int cols = Math.Max(1, a.BlocksCols);
                    values[21] = Pointer(a.BlockList);
                    values[22] = (uint)(a.BlocksStrideB / cols);
                    values[23] = (uint)(a.BlocksStrideH / cols);
                    values[24] = (uint)a.BlocksCols;
                }
                if (local)
                {
                    values[count - 1] = (uint)a.Window;
                    parameters[count - 1] = &values[count - 1];
                }

                var stream = ((CudaStream)accelerator.DefaultStream).StreamPtr;
                CudaDriver.Check(CudaDriver.cuCtxSetCurrent(accelerator.NativePtr), "cuCtxSetCurrent");
                uint blocks = (uint)((a.Mq + module.BlockM - 1) / module.BlockM);
                CudaDriver.Check(
                    CudaDriver.cuLaunchKernel(function, blocks, (uint)a.Hq, (uint)a.Batch, (uint)module.Threads, 1, 1,
                        (uint)module.SharedBytes, stream, parameters, null),
                    "cuLaunchKernel " + module.EntryPoint);
            }
            finally
            {
                NativeMemory.AlignedFree(maps);
            }
            return true;
        }

        /// <summary>A block list's four parameters (list, rows_b, rows_h, cols) from <paramref name="first"/> on.</summary>
        private static void SetBlockList(ulong* values, int first, in BlockMasks.ListLayout list)
        {
            values[first] = Pointer(list.List);
            values[first + 1] = (uint)list.RowsB;
            values[first + 2] = (uint)list.RowsH;
            values[first + 3] = (uint)list.Cols;
        }

        /// <summary>The mods' argument block a module with mods takes (HopperForwardEmitter's <c>mod_args</c>, ModParamLayout's offsets).</summary>
        private const int ModArgsBytes = 320;

        private static void WriteModArgs(byte* blob, in ModArgs m)
        {
            new Span<byte>(blob, ModArgsBytes).Clear();
            int* ints = (int*)blob;
            float* floats = (float*)(blob + 32);
            ints[0] = m.Int0; ints[1] = m.Int1; ints[2] = m.Int2; ints[3] = m.Int3;
            ints[4] = m.Int4; ints[5] = m.Int5; ints[6] = m.Int6; ints[7] = m.Int7;
            floats[0] = m.Float0; floats[1] = m.Float1; floats[2] = m.Float2; floats[3] = m.Float3;
            floats[4] = m.Float4; floats[5] = m.Float5; floats[6] = m.Float6; floats[7] = m.Float7;
            void Table<TElement>(int kind, int slot, ArrayView<TElement> view, long stride0, long stride1)
                where TElement : unmanaged
            {
                // Pointers at 64 (int) / 96 (float), lengths at 128 / 160, strides at 192 / 256, 8 bytes each (16 a slot for strides).
                *(ulong*)(blob + 64 + 32 * kind + 8 * slot) = view.IsValid ? Pointer(view) : 0;
                *(long*)(blob + 128 + 32 * kind + 8 * slot) = view.IsValid ? view.Length : 0;
                *(long*)(blob + 192 + 64 * kind + 16 * slot) = stride0;
                *(long*)(blob + 200 + 64 * kind + 16 * slot) = stride1;
            }
            Table(0, 0, m.IntTable0, m.IntTable0Stride0, m.IntTable0Stride1);
            Table(0, 1, m.IntTable1, m.IntTable1Stride0, m.IntTable1Stride1);
            Table(0, 2, m.IntTable2, m.IntTable2Stride0, m.IntTable2Stride1);
            Table(0, 3, m.IntTable3, m.IntTable3Stride0, m.IntTable3Stride1);
            Table(1, 0, m.FloatTable0, m.FloatTable0Stride0, m.FloatTable0Stride1);
            Table(1, 1, m.FloatTable1, m.FloatTable1Stride0, m.FloatTable1Stride1);
            Table(1, 2, m.FloatTable2, m.FloatTable2Stride0, m.FloatTable2Stride1);
            Table(1, 3, m.FloatTable3, m.FloatTable3Stride0, m.FloatTable3Stride1);
        }

        /// <summary>
        /// The module whose grid finishes first: waves of CTAs over the device's multiprocessors (one CTA each), each wave
        /// as long as its CTAs' rows over their relative throughput. B2 H8 M2048 at HeadDim 64: 176 CTAs of 192 rows (two
        /// waves, the second a third full) against 256 of 128 rows (two full waves), so the 128-row module runs.
        /// </summary>
        internal static HopperForwardModule Pick(HopperForwardModule module, int mq, int heads, int multiprocessors)
        {
            if (module.SmallGrid is not { } small || ForceFirstModule)
                return module;
            if (ForceSmallGrid)
                return small;
            int sms = Math.Max(1, multiprocessors);
            double Cost(HopperForwardModule m) =>
                Math.Ceiling((double)((mq + m.BlockM - 1) / m.BlockM) * heads / sms) * m.BlockM / m.RelativeThroughput;
            return Cost(small) < Cost(module) ? small : module;
        }

        /// <summary>
        /// A 4-D tensor map over [B, M, H, K] (innermost first: K, H, M, B) whose box is 64 columns × 1 head × <paramref name="rows"/>
        /// rows × 1 batch, 128-byte swizzled; rows past M read as zeros.
        /// </summary>
        private static void EncodeRows(byte* map, int dataType, ulong address, int headDim, int heads, int tokens, int batch, int rows)
        {
            var dims = stackalloc ulong[4] { (ulong)headDim, (ulong)heads, (ulong)tokens, (ulong)batch };
            var strides = stackalloc ulong[3] { (ulong)headDim * 2, (ulong)heads * (ulong)headDim * 2, (ulong)tokens * (ulong)heads * (ulong)headDim * 2 };
            var box = stackalloc uint[4] { 64, 1, (uint)rows, 1 };
            var elementStrides = stackalloc uint[4] { 1, 1, 1, 1 };
            CudaDriver.Check(
                CudaDriver.cuTensorMapEncodeTiled(map, dataType, 4, (void*)address, dims, strides, box, elementStrides,
                    0, CudaDriver.TensorMapSwizzle128B, CudaDriver.TensorMapL2Promotion128B, 0),
                "cuTensorMapEncodeTiled");
        }

        private static ulong Pointer<T>(ArrayView<T> view)
            where T : unmanaged =>
            view.IsValid && view.Length > 0 ? (ulong)view.LoadEffectiveAddressAsPtr().ToInt64() : 0UL;

        private static DeviceState State(Accelerator accelerator) => Devices.GetValue(accelerator, a => new DeviceState(a));

        private static IntPtr Function(Accelerator accelerator, HopperForwardModule module) =>
            Function(accelerator, module.Hash, module.Ptx, module.EntryPoint, module.SharedBytes);

        private static IntPtr BackwardFunction(Accelerator accelerator, HopperBackwardModule module, bool keysAndValues) =>
            keysAndValues
                ? Function(accelerator, module.Hash, module.Ptx, module.KeysAndValuesEntryPoint, module.KeysAndValuesSharedBytes)
                : Function(accelerator, module.Hash, module.Ptx, module.QueriesEntryPoint, module.QueriesSharedBytes);

        /// <summary>An entry point of a module (loaded once per context), its dynamic shared-memory limit raised.</summary>
        internal static IntPtr Function(Accelerator accelerator, string hash, string ptx, string entryPoint, int sharedBytes) =>
            State(accelerator).Functions.GetOrAdd(hash + "/" + entryPoint, _ => new Lazy<IntPtr>(() =>
            {
                var handle = Module(accelerator, hash, ptx, entryPoint);
                CudaDriver.Check(CudaDriver.cuModuleGetFunction(out var function, handle, entryPoint), "cuModuleGetFunction " + entryPoint);
                CudaDriver.Check(
                    CudaDriver.cuFuncSetAttribute(function, CudaDriver.FunctionAttributeMaxDynamicSharedSizeBytes, sharedBytes),
                    "cuFuncSetAttribute (dynamic shared memory " + sharedBytes + " B)");
                return function;
            })).Value;

        private static IntPtr Module(Accelerator accelerator, string hash, string ptx, string name) =>
            State(accelerator).Modules.GetOrAdd(hash, _ => new Lazy<IntPtr>(() => Load(accelerator, ptx, name))).Value;

        /// <summary>
        /// The PTX compiled by the driver's JIT and loaded into the context (the driver's JIT cache, CUDA_CACHE_PATH, keeps the
        /// result for later processes), with ptxas's error log in the exception when it does not compile.
        /// </summary>
        private static IntPtr Load(Accelerator accelerator, string ptxText, string name)
        {
            var state = State(accelerator);
            CudaDriver.Check(CudaDriver.cuCtxSetCurrent(accelerator.NativePtr), "cuCtxSetCurrent");
            const int logSize = 16 * 1024;
            var errorLog = stackalloc byte[logSize];
            var options = stackalloc int[2] { CudaDriver.JitErrorLogBuffer, CudaDriver.JitErrorLogBufferSizeBytes };
            var values = stackalloc void*[2] { errorLog, (void*)logSize };
            var ptx = Encoding.UTF8.GetBytes(ptxText + "\0");
            var clock = Stopwatch.StartNew();
            IntPtr handle;
            int result;
            fixed (byte* image = ptx)
                result = CudaDriver.cuModuleLoadDataEx(out handle, image, 2, options, values);
            state.AddCompileTime(clock.Elapsed.TotalMilliseconds);
            if (result != 0)
                throw new InvalidOperationException(
                    $"CUDA driver: the PTX of {name} did not compile (error {result}): {Marshal.PtrToStringUTF8((IntPtr)errorLog)}");
            return handle;
        }

        private sealed class DeviceState
        {
            private long compileMicroseconds;

            public DeviceState(Accelerator accelerator)
            {
                if (accelerator is not CudaAccelerator)
                    return;
                CudaDriver.Check(CudaDriver.cuCtxSetCurrent(accelerator.NativePtr), "cuCtxSetCurrent");
                CudaDriver.Check(CudaDriver.cuCtxGetDevice(out int device), "cuCtxGetDevice");
                CudaDriver.Check(CudaDriver.cuDeviceGetAttribute(out int major, CudaDriver.DeviceAttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute");
                CudaDriver.Check(CudaDriver.cuDeviceGetAttribute(out int minor, CudaDriver.DeviceAttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute");
                CudaDriver.Check(CudaDriver.cuDriverGetVersion(out int driver), "cuDriverGetVersion");
                Major = major;
                Minor = minor;
                DriverVersion = driver;
                // sm_90a code runs on compute capability 9.0 exactly (the 'a' features are not forward-compatible).
                IsHopper = major == 9 && minor == 0;
            }

            public int Major { get; }
            public int Minor { get; }
            public int DriverVersion { get; }
            public bool IsHopper { get; }
            public ConcurrentDictionary<string, Lazy<IntPtr>> Modules { get; } = new();
            public ConcurrentDictionary<string, Lazy<IntPtr>> Functions { get; } = new();
            public double CompileMilliseconds => System.Threading.Interlocked.Read(ref compileMicroseconds) / 1000.0;

            public void AddCompileTime(double milliseconds) =>
                System.Threading.Interlocked.Add(ref compileMicroseconds, (long)(milliseconds * 1000));
        }
    }
}
