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
        public const int JitInputPtx = 1;
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
        [LibraryImport(Library, EntryPoint = "cuLinkCreate_v2")]
        public static partial int cuLinkCreate(uint optionCount, int* options, void** values, out IntPtr state);
        [LibraryImport(Library, EntryPoint = "cuLinkAddData_v2", StringMarshalling = StringMarshalling.Utf8)]
        public static partial int cuLinkAddData(
            IntPtr state, int type, byte* data, nuint size, string name, uint optionCount, int* options, void** values);
        [LibraryImport(Library)] public static partial int cuLinkComplete(IntPtr state, out void* cubin, out nuint size);
        [LibraryImport(Library)] public static partial int cuLinkDestroy(IntPtr state);
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
