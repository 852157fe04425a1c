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
    /// Runs a variant's sm_90a forward module on ILGPU's CUDA context, buffers and stream: compiles the PTX through the
    /// driver once per context (the cubin is kept on disk, keyed by the PTX's hash, the device and the driver, so a second
    /// process skips the JIT), raises the kernel's dynamic shared-memory limit, encodes the Q, K and V tensor maps and
    /// launches. A call it cannot serve (not compute capability 9.0, <c>XFORMERS_BACKEND=ilgpu</c>, an unaligned view, an
    /// empty tensor) returns false and the ILGPU kernels run instead.
    /// </summary>
    internal static unsafe class HopperLauncher
    {
        /// <summary><c>XFORMERS_BACKEND=ilgpu</c> keeps every launch on the ILGPU kernels (for comparison).</summary>
        public const string BackendVariable = "XFORMERS_BACKEND";

        /// <summary><c>XFORMERS_CUBIN_CACHE</c>: where compiled modules are kept (default: the user's cache folder).</summary>
        public const string CacheVariable = "XFORMERS_CUBIN_CACHE";

        private static readonly bool ForcedOff =
            string.Equals(Environment.GetEnvironmentVariable(BackendVariable), "ilgpu", StringComparison.OrdinalIgnoreCase);

        private static readonly ConditionalWeakTable<Accelerator, DeviceState> Devices = new();

        /// <summary>For the device harness: always the variant's first module, whatever the grid (its conformance checks both).</summary>
        internal static bool ForceFirstModule { get; set; }

        /// <summary>Whether launches on <paramref name="accelerator"/> may take the sm_90a modules.</summary>
        public static bool IsAvailable(Accelerator accelerator) =>
            !ForcedOff && accelerator is CudaAccelerator && State(accelerator).IsHopper;

        /// <summary>Milliseconds the driver spent compiling modules on this accelerator (0 when every cubin came from disk).</summary>
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

        /// <summary>Launches the forward; false when this call must take the ILGPU kernels instead.</summary>
        public static bool TryLaunchForward<T>(Accelerator accelerator, HopperForwardModule module, DType dtype, in AttentionArgs<T> a)
            where T : unmanaged
        {
            if (!IsAvailable(accelerator) || sizeof(T) != 2)
                return false;
            if (a.Batch <= 0 || a.Mq <= 0 || a.Mkv <= 0 || !(a.Scale > 0f) || float.IsInfinity(a.Scale))
                return false;
            ulong q = Pointer(a.Q), k = Pointer(a.K), v = Pointer(a.V);
            if (q % 16 != 0 || k % 16 != 0 || v % 16 != 0)
                return false;

            module = Pick(module, a.Mq, a.Hq * a.Batch, accelerator.NumMultiprocessors);
            var function = Function(accelerator, module);
            var maps = (byte*)NativeMemory.AlignedAlloc(3 * 128, 64);
            try
            {
                int dataType = dtype == DType.BFloat16 ? CudaDriver.TensorMapBFloat16 : CudaDriver.TensorMapFloat16;
                EncodeRows(maps, dataType, q, module.HeadDim, a.Hq, a.Mq, a.Batch, module.BlockM);
                EncodeRows(maps + 128, dataType, k, module.HeadDim, a.Hkv, a.Mkv, a.Batch, module.BlockN);
                EncodeRows(maps + 256, dataType, v, module.HeadDim, a.Hkv, a.Mkv, a.Batch, module.BlockN);

                // The kernel's parameters, in HopperForwardEmitter's order.
                const int count = 20;
                var values = stackalloc ulong[count];
                var parameters = stackalloc void*[count];
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

        /// <summary>
        /// The module whose grid finishes first: waves of CTAs over the device's multiprocessors (one CTA each), each wave
        /// as long as its CTAs' rows over their relative throughput. B2 H8 M2048 at HeadDim 64: 176 CTAs of 192 rows (two
        /// waves, the second a third full) against 256 of 128 rows (two full waves), so the 128-row module runs.
        /// </summary>
        internal static HopperForwardModule Pick(HopperForwardModule module, int mq, int heads, int multiprocessors)
        {
            if (module.SmallGrid is not { } small || ForceFirstModule)
                return module;
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
            State(accelerator).Functions.GetOrAdd(module.Hash, _ => new Lazy<IntPtr>(() => Load(accelerator, module))).Value;

        /// <summary>The cubin from disk, else the driver's JIT (then written to disk); the function with its shared memory raised.</summary>
        private static IntPtr Load(Accelerator accelerator, HopperForwardModule module)
        {
            var state = State(accelerator);
            CudaDriver.Check(CudaDriver.cuCtxSetCurrent(accelerator.NativePtr), "cuCtxSetCurrent");
            string? path = CachePath(module, state);
            byte[]? cubin = null;
            if (path is not null && File.Exists(path))
            {
                try { cubin = File.ReadAllBytes(path); }
                catch (IOException) { cubin = null; }
                catch (UnauthorizedAccessException) { cubin = null; }
            }
            if (cubin is null)
            {
                var clock = Stopwatch.StartNew();
                cubin = Link(module);
                state.AddCompileTime(clock.Elapsed.TotalMilliseconds);
                if (path is not null)
                    TryWrite(path, cubin);
            }
            IntPtr handle;
            fixed (byte* image = cubin)
                CudaDriver.Check(CudaDriver.cuModuleLoadData(out handle, image), "cuModuleLoadData " + module.EntryPoint);
            CudaDriver.Check(CudaDriver.cuModuleGetFunction(out var function, handle, module.EntryPoint), "cuModuleGetFunction " + module.EntryPoint);
            CudaDriver.Check(
                CudaDriver.cuFuncSetAttribute(function, CudaDriver.FunctionAttributeMaxDynamicSharedSizeBytes, module.SharedBytes),
                "cuFuncSetAttribute (dynamic shared memory " + module.SharedBytes + " B)");
            return function;
        }

        /// <summary>PTX → cubin through the driver's linker (cuLink*), with its error log in the exception.</summary>
        private static byte[] Link(HopperForwardModule module)
        {
            const int logSize = 16 * 1024;
            var errorLog = stackalloc byte[logSize];
            var options = stackalloc int[2] { CudaDriver.JitErrorLogBuffer, CudaDriver.JitErrorLogBufferSizeBytes };
            var values = stackalloc void*[2] { errorLog, (void*)logSize };
            CudaDriver.Check(CudaDriver.cuLinkCreate(2, options, values, out var link), "cuLinkCreate");
            try
            {
                var ptx = Encoding.UTF8.GetBytes(module.Ptx + "\0");
                fixed (byte* data = ptx)
                {
                    int result = CudaDriver.cuLinkAddData(link, CudaDriver.JitInputPtx, data, (nuint)ptx.Length, module.EntryPoint + ".ptx", 0, null, null);
                    if (result != 0)
                        throw new InvalidOperationException(
                            $"CUDA driver: the PTX of {module.EntryPoint} did not compile (error {result}): {Marshal.PtrToStringUTF8((IntPtr)errorLog)}");
                }
                CudaDriver.Check(CudaDriver.cuLinkComplete(link, out var cubin, out var size), "cuLinkComplete");
                return new ReadOnlySpan<byte>(cubin, checked((int)size)).ToArray();
            }
            finally
            {
                CudaDriver.cuLinkDestroy(link);
            }
        }

        private static string? CachePath(HopperForwardModule module, DeviceState state)
        {
            string? root = Environment.GetEnvironmentVariable(CacheVariable);
            if (string.IsNullOrEmpty(root))
            {
                string? home = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
                if (string.IsNullOrEmpty(home))
                {
                    string user = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
                    if (string.IsNullOrEmpty(user))
                        return null;
                    home = Path.Combine(user, ".cache");
                }
                root = Path.Combine(home, "xformers-dotnet", "cubin");
            }
            return Path.Combine(root, $"{module.Hash.Substring(0, 40)}-sm{state.Major}{state.Minor}-driver{state.DriverVersion}.cubin");
        }

        /// <summary>Writes beside the target, then renames: a reader never sees half a file. A cache that cannot be written is skipped.</summary>
        private static void TryWrite(string path, byte[] cubin)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                string temporary = path + "." + Environment.ProcessId + ".tmp";
                File.WriteAllBytes(temporary, cubin);
                File.Move(temporary, path, overwrite: true);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
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
            public ConcurrentDictionary<string, Lazy<IntPtr>> Functions { get; } = new();
            public double CompileMilliseconds => System.Threading.Interlocked.Read(ref compileMicroseconds) / 1000.0;

            public void AddCompileTime(double milliseconds) =>
                System.Threading.Interlocked.Add(ref compileMicroseconds, (long)(milliseconds * 1000));
        }
    }
}
