using System;
using System.Collections.Concurrent;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using XFormers.Kernels;

namespace XFormers.Hopper
{
    /// <summary>
    /// Launches the decode kernel that <see cref="DecodeEmitter"/> writes (cp.async rings, mma.sync) through the CUDA driver,
    /// in place of the ILGPU decode kernel, where <see cref="HopperLauncher.IsAvailable"/> says the driver path is on (compute
    /// capability 9.0, where it was measured) and every row of a sequence sees the same keys.
    /// </summary>
    internal static unsafe class HopperDecode
    {
        private static readonly ConcurrentDictionary<DecodeTraits, (string Ptx, string Hash)> Modules = new();

        /// <summary>For the device harness: the ILGPU decode kernel instead (to time both in one process).</summary>
        internal static bool Disabled { get; set; }

        /// <summary>
        /// Whether the module takes the launch: a head dim of 64, 128 or 256, at most 16 rows a key/value head, and rows that
        /// all see the same keys (one query a sequence, or no causal mask: the module masks only the chunk's end).
        /// </summary>
        internal static bool Takes(Accelerator accelerator, int headDim, int rowsPerHead, int longestQuery, bool causal) =>
            !Disabled && ShapeFits(headDim, rowsPerHead, longestQuery, causal) && HopperLauncher.IsAvailable(accelerator);

        /// <summary>The shape half of <see cref="Takes"/>.</summary>
        internal static bool ShapeFits(int headDim, int rowsPerHead, int longestQuery, bool causal) =>
            DecodeTraits.TakesHeadDim(headDim) && rowsPerHead <= DecodeTraits.MaxRows && (!causal || longestQuery <= 1);

        /// <summary>The module's PTX (written once a process) and its hash.</summary>
        internal static (string Ptx, string Hash) Module(DecodeTraits traits) =>
            Modules.GetOrAdd(traits, static t =>
            {
                string ptx = DecodeEmitter.Emit(t);
                return (ptx, Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(ptx))));
            });

        /// <summary>Every module, for the PTX listing (ptxas on the device).</summary>
        internal static System.Collections.Generic.IEnumerable<DecodeTraits> AllTraits()
        {
            foreach (bool bfloat16 in new[] { false, true })
                foreach (int headDim in new[] { 64, 128, 256 })
                    foreach (bool paged in new[] { false, true })
                        yield return new DecodeTraits(bfloat16, headDim, paged);
        }

        /// <summary>
        /// One launch over <paramref name="ctas"/> CTAs of (sequence, key/value head, chunk), arguments as the ILGPU kernel
        /// takes them; the caller checked <see cref="Takes"/> and launches the chunks' merge after it on the same stream.
        /// </summary>
        internal static void Launch(Accelerator accelerator, DecodeTraits traits, in DecodeArgs a, long ctas)
        {
            var (ptx, hash) = Module(traits);
            var function = HopperLauncher.Function(accelerator, hash, ptx, traits.EntryPoint, traits.SharedBytes);
            var values = stackalloc ulong[DecodeEmitter.Parameters.Length];
            var parameters = stackalloc void*[DecodeEmitter.Parameters.Length];
            // In DecodeEmitter.Parameters' order.
            values[0] = Pointer(a.Query);
            values[1] = Pointer(a.Key);
            values[2] = Pointer(a.Value);
            values[3] = Pointer(a.Sequences);
            values[4] = (uint)a.UniformQ;
            values[5] = (uint)a.UniformKv;
            values[6] = Pointer(a.BlockTable);
            values[7] = (uint)a.PagesPerSequence;
            values[8] = (uint)a.PageSize;
            values[9] = (uint)a.Hq;
            values[10] = (uint)a.Hkv;
            *(float*)&values[11] = a.ScaleLog2;
            values[12] = (uint)a.ChunkKeys;
            values[13] = (uint)a.Chunks;
            values[14] = (uint)a.QRows;
            values[15] = Pointer(a.Output);
            values[16] = Pointer(a.Lse);
            values[17] = Pointer(a.PartialOutput);
            values[18] = Pointer(a.PartialLse);
            for (int i = 0; i < DecodeEmitter.Parameters.Length; i++)
                parameters[i] = &values[i];
            var stream = ((CudaStream)accelerator.DefaultStream).StreamPtr;
            CudaDriver.Check(CudaDriver.cuCtxSetCurrent(accelerator.NativePtr), "cuCtxSetCurrent");
            CudaDriver.Check(
                CudaDriver.cuLaunchKernel(function, checked((uint)ctas), 1, 1, DecodeTraits.Threads, 1, 1, (uint)traits.SharedBytes,
                    stream, parameters, null),
                "cuLaunchKernel " + traits.EntryPoint);
        }

        private static ulong Pointer<T>(ArrayView<T> view)
            where T : unmanaged =>
            view.IsValid && view.Length > 0 ? (ulong)view.LoadEffectiveAddressAsPtr().ToInt64() : 0UL;
    }
}
