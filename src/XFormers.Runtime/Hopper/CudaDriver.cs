using System;
using System.Runtime.InteropServices;

namespace XFormers.Hopper
{
    /// <summary>
    /// The few CUDA driver entry points the sm_90a backend needs beyond what ILGPU binds: module loading and linking,
    /// the dynamic shared-memory attribute, tensor-map encoding and kernel launch (libcuda.so.1, the driver itself).
    /// </summary>
    internal static unsafe partial class CudaDriver
    {
        private const string Library = "libcuda.so.1";

        public const int DeviceAttributeComputeCapabilityMajor = 75;
        public const int DeviceAttributeComputeCapabilityMinor = 76;
        public const int FunctionAttributeMaxDynamicSharedSizeBytes = 8;
        public const int JitErrorLogBuffer = 5;
        public const int JitErrorLogBufferSizeBytes = 6;
        public const int TensorMapFloat16 = 6;
        public const int TensorMapBFloat16 = 9;
        public const int TensorMapSwizzle128B = 3;
        public const int TensorMapL2Promotion128B = 2;

        [LibraryImport(Library)] public static partial int cuCtxSetCurrent(IntPtr context);
        [LibraryImport(Library)] public static partial int cuCtxGetDevice(out int device);
        [LibraryImport(Library)] public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
        [LibraryImport(Library)] public static partial int cuDriverGetVersion(out int version);
        [LibraryImport(Library)] public static partial int cuModuleLoadData(out IntPtr module, byte* image);
        [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, string name);
        [LibraryImport(Library)] public static partial int cuFuncSetAttribute(IntPtr function, int attribute, int value);
        [LibraryImport(Library)]
        public static partial int cuLaunchKernel(
            IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
            uint sharedBytes, IntPtr stream, void** parameters, void** extra);
        [LibraryImport(Library)]
        public static partial int cuTensorMapEncodeTiled(
            void* tensorMap, int dataType, uint rank, void* globalAddress, ulong* globalDim, ulong* globalStrides,
            uint* boxDim, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill);
        /// <summary>
        /// Compiles PTX (with JIT options) and loads it. Unlike the cuLink* path, which compiles PTX as relocatable code, this
        /// keeps whole-kernel register allocation: the dK/dV kernel at HeadDim 128 spilled 448 bytes a thread through cuLink on
        /// the H200 (driver 580.159), none this way. The driver keeps the result in its JIT cache (CUDA_CACHE_PATH).
        /// </summary>
        [LibraryImport(Library)]
        public static partial int cuModuleLoadDataEx(out IntPtr module, byte* image, uint optionCount, int* options, void** values);
        [LibraryImport(Library)] public static partial int cuGetErrorString(int error, out IntPtr text);

        /// <summary>Throws <see cref="InvalidOperationException"/> naming the call and the driver's message unless it succeeded.</summary>
        public static void Check(int result, string call)
        {
            if (result == 0)
                return;
            string message = cuGetErrorString(result, out var text) == 0 && text != IntPtr.Zero
                ? Marshal.PtrToStringUTF8(text) ?? "unknown error"
                : "unknown error";
            throw new InvalidOperationException($"CUDA driver: {call} failed with error {result} ({message}).");
        }
    }
}
