using System;
using System.Runtime.InteropServices;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace XFormers.Training
{
    /// <summary>
    /// The CUDA driver calls the trainer makes beside ILGPU (libcuda.so.1): contexts, the primary context, streams and
    /// events for NCCL's side stream, and the context a pointer belongs to. ILGPU's own <c>Accelerator.Bind()</c> is no
    /// substitute for <see cref="MakeCurrent"/>: it remembers the accelerator it bound last on each thread and returns at
    /// once when asked again, so after another library switched the thread's context (NCCL's <c>cudaSetDevice</c>) it
    /// never calls <c>cuCtxSetCurrent</c>.
    /// </summary>
    internal static class CudaDriver
    {
        private const string Library = "libcuda.so.1";

        public const uint StreamNonBlocking = 1;      // CU_STREAM_NON_BLOCKING
        public const uint EventDisableTiming = 2;     // CU_EVENT_DISABLE_TIMING
        private const int PointerAttributeContext = 1; // CU_POINTER_ATTRIBUTE_CONTEXT
        private const int FunctionAttributeMaxThreadsPerBlock = 0; // CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK

        /// <summary>Throws <see cref="InvalidOperationException"/> naming <paramref name="call"/> and the driver's error unless it succeeded.</summary>
        public static void Check(int status, string call)
        {
            if (status == 0)
                return;
            string name = GetErrorName(status, out var text) == 0 && text != IntPtr.Zero ? Marshal.PtrToStringAnsi(text) ?? "" : "";
            throw new InvalidOperationException($"{call} failed: CUDA driver error {status}{(name.Length > 0 ? $" ({name})" : "")}.");
        }

        /// <summary>Makes <paramref name="accelerator"/>'s context current on this thread, whatever ILGPU believes is bound.</summary>
        public static void MakeCurrent(Accelerator accelerator)
        {
            if (accelerator is CudaAccelerator)
                Check(CtxSetCurrent(accelerator.NativePtr), "cuCtxSetCurrent");
        }

        /// <summary>The context current on this thread (zero when none).</summary>
        public static IntPtr Current() => CtxGetCurrent(out var context) == 0 ? context : IntPtr.Zero;

        /// <summary>The context <paramref name="pointer"/> was allocated in, or zero when the driver does not know it.</summary>
        public static unsafe IntPtr ContextOf(IntPtr pointer)
        {
            IntPtr context = IntPtr.Zero;
            return pointer != IntPtr.Zero && PointerGetAttribute(&context, PointerAttributeContext, pointer) == 0 ? context : IntPtr.Zero;
        }

        /// <summary>The context <paramref name="stream"/> belongs to (zero for an unknown stream).</summary>
        public static IntPtr ContextOfStream(IntPtr stream) => StreamGetCtx(stream, out var context) == 0 ? context : IntPtr.Zero;

        /// <summary>The device's primary context when it is active (someone retains it), without retaining it; else zero.</summary>
        public static IntPtr ActivePrimary(int device)
        {
            if (DevicePrimaryCtxGetState(device, out _, out int active) != 0 || active == 0)
                return IntPtr.Zero;
            if (DevicePrimaryCtxRetain(out var primary, device) != 0)
                return IntPtr.Zero;
            DevicePrimaryCtxRelease(device);
            return primary;
        }

        /// <summary>The most threads a group of <paramref name="function"/> may have: 1024, or fewer when its registers do not fit.</summary>
        public static int MaxThreadsPerBlock(IntPtr function)
        {
            Check(FuncGetAttribute(out int threads, FunctionAttributeMaxThreadsPerBlock, function), "cuFuncGetAttribute");
            return threads;
        }

        [DllImport(Library, EntryPoint = "cuGetErrorName")]
        private static extern int GetErrorName(int error, out IntPtr name);

        [DllImport(Library, EntryPoint = "cuCtxGetCurrent")]
        internal static extern int CtxGetCurrent(out IntPtr context);

        [DllImport(Library, EntryPoint = "cuCtxSetCurrent")]
        internal static extern int CtxSetCurrent(IntPtr context);

        [DllImport(Library, EntryPoint = "cuCtxGetDevice")]
        internal static extern int CtxGetDevice(out int device);

        /// <summary>The entry point ILGPU 1.5.3 creates its context with (CUDA 13's headers map cuCtxCreate to _v4; the driver keeps _v2).</summary>
        [DllImport(Library, EntryPoint = "cuCtxCreate_v2")]
        internal static extern int CtxCreate(out IntPtr context, uint flags, int device);

        [DllImport(Library, EntryPoint = "cuCtxDestroy_v2")]
        internal static extern int CtxDestroy(IntPtr context);

        [DllImport(Library, EntryPoint = "cuCtxPopCurrent_v2")]
        internal static extern int CtxPopCurrent(out IntPtr context);

        [DllImport(Library, EntryPoint = "cuDevicePrimaryCtxRetain")]
        internal static extern int DevicePrimaryCtxRetain(out IntPtr context, int device);

        [DllImport(Library, EntryPoint = "cuDevicePrimaryCtxRelease_v2")]
        internal static extern int DevicePrimaryCtxRelease(int device);

        [DllImport(Library, EntryPoint = "cuDevicePrimaryCtxGetState")]
        internal static extern int DevicePrimaryCtxGetState(int device, out uint flags, out int active);

        [DllImport(Library, EntryPoint = "cuPointerGetAttribute")]
        private static extern unsafe int PointerGetAttribute(void* data, int attribute, IntPtr pointer);

        [DllImport(Library, EntryPoint = "cuFuncGetAttribute")]
        private static extern int FuncGetAttribute(out int value, int attribute, IntPtr function);

        [DllImport(Library, EntryPoint = "cuStreamGetCtx")]
        private static extern int StreamGetCtx(IntPtr stream, out IntPtr context);

        [DllImport(Library, EntryPoint = "cuStreamCreate")]
        internal static extern int StreamCreate(out IntPtr stream, uint flags);

        [DllImport(Library, EntryPoint = "cuStreamDestroy_v2")]
        internal static extern int StreamDestroy(IntPtr stream);

        [DllImport(Library, EntryPoint = "cuEventCreate")]
        internal static extern int EventCreate(out IntPtr e, uint flags);

        [DllImport(Library, EntryPoint = "cuEventDestroy_v2")]
        internal static extern int EventDestroy(IntPtr e);

        [DllImport(Library, EntryPoint = "cuEventRecord")]
        internal static extern int EventRecord(IntPtr e, IntPtr stream);

        [DllImport(Library, EntryPoint = "cuStreamWaitEvent")]
        internal static extern int StreamWaitEvent(IntPtr stream, IntPtr e, uint flags);
    }
}
