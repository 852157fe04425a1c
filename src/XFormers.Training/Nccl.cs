using System;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace XFormers.Training
{
    /// <summary>
    /// The NCCL entry points data parallelism needs, bound by P/Invoke to libnccl.so.2 (looked up as the file or folder in
    /// <c>XFORMERS_NCCL</c>, pip's nvidia-nccl wheel folders, then the loader path). Every call's status goes through
    /// <see cref="Check"/>, which names the call and NCCL's own error string.
    /// </summary>
    public static class Nccl
    {
        public const string Library = "xformers_nccl";
        public const string PathVariable = "XFORMERS_NCCL";

        /// <summary>Size of ncclUniqueId.</summary>
        public const int UniqueIdBytes = 128;

        private static readonly object Gate = new();
        private static bool resolverSet;
        private static IntPtr handle;
        private static string? failure;

        /// <summary>ncclResult_t.</summary>
        public enum Result
        {
            Success = 0,
            UnhandledCudaError = 1,
            SystemError = 2,
            InternalError = 3,
            InvalidArgument = 4,
            InvalidUsage = 5,
            RemoteError = 6,
            InProgress = 7,
        }

        internal const int Float32 = 7;     // ncclFloat32
        internal const int Avg = 4;         // ncclAvg (NCCL ≥ 2.10)

        [StructLayout(LayoutKind.Sequential)]
        internal unsafe struct UniqueId
        {
            public fixed byte Internal[UniqueIdBytes];
        }

        /// <summary>True when libnccl.so.2 was found and loaded; otherwise <see cref="Failure"/> says what was tried.</summary>
        public static bool TryLoad()
        {
            lock (Gate)
            {
                if (!resolverSet)
                {
                    resolverSet = true;
                    NativeResolver.Register(Library, () => TryLoad() ? handle : IntPtr.Zero);
                    foreach (var candidate in Candidates())
                    {
                        if (NativeLibrary.TryLoad(candidate, out handle))
                            break;
                    }
                    if (handle == IntPtr.Zero)
                        failure = $"libnccl.so.2 not found ({PathVariable}, pip's nvidia/nccl/lib folders, then the loader path); set {PathVariable} to the library or its folder.";
                }
                return handle != IntPtr.Zero;
            }
        }

        /// <summary>Why loading failed (null after a success).</summary>
        public static string? Failure
        {
            get
            {
                TryLoad();
                return failure;
            }
        }

        /// <summary>NCCL's version as major.minor.patch.</summary>
        public static string Version()
        {
            Load();
            Check(GetVersion(out int code), "ncclGetVersion");
            // 2.x encodes major * 10000 + minor * 100 + patch.
            return string.Create(CultureInfo.InvariantCulture, $"{code / 10000}.{code / 100 % 100}.{code % 100}");
        }

        /// <summary>A new ncclUniqueId (rank 0's job, or the launcher's) as hex text, to hand to every rank.</summary>
        public static unsafe string NewUniqueId()
        {
            Load();
            UniqueId id;
            Check(GetUniqueId(&id), "ncclGetUniqueId");
            return Convert.ToHexString(new ReadOnlySpan<byte>(id.Internal, UniqueIdBytes));
        }

        internal static unsafe UniqueId ParseUniqueId(string hex)
        {
            byte[] bytes;
            try
            {
                bytes = Convert.FromHexString(hex);
            }
            catch (FormatException)
            {
                bytes = Array.Empty<byte>();
            }
            if (bytes.Length != UniqueIdBytes)
                throw new ArgumentException($"an NCCL unique id is {2 * UniqueIdBytes} hex digits; got {hex.Length} characters.", nameof(hex));
            var id = default(UniqueId);
            bytes.CopyTo(new Span<byte>(id.Internal, UniqueIdBytes));
            return id;
        }

        /// <summary>The text of an NCCL status: NCCL's own string when the library is loaded, else a fixed one.</summary>
        public static string ErrorString(Result result)
        {
            if (handle != IntPtr.Zero)
                return Marshal.PtrToStringAnsi(GetErrorString(result)) ?? result.ToString();
            return result switch
            {
                Result.Success => "no error",
                Result.UnhandledCudaError => "unhandled cuda error (run with NCCL_DEBUG=INFO for details)",
                Result.SystemError => "unhandled system error (run with NCCL_DEBUG=INFO for details)",
                Result.InternalError => "internal error - please report this issue to the NCCL developers",
                Result.InvalidArgument => "invalid argument (run with NCCL_DEBUG=WARN for details)",
                Result.InvalidUsage => "invalid usage (run with NCCL_DEBUG=WARN for details)",
                Result.RemoteError => "remote process exited or there was a network error",
                Result.InProgress => "NCCL operation in progress",
                _ => $"unknown result code {(int)result}",
            };
        }

        /// <summary>Throws <see cref="InvalidOperationException"/> naming <paramref name="call"/> unless it succeeded.</summary>
        public static void Check(Result result, string call)
        {
            if (result != Result.Success)
                throw new InvalidOperationException($"{call} failed: {ErrorString(result)} (ncclResult {(int)result}).");
        }

        internal static void Load()
        {
            if (!TryLoad())
                throw new DllNotFoundException(failure);
        }

        private static string[] Candidates()
        {
            var list = new System.Collections.Generic.List<string>();
            var env = Environment.GetEnvironmentVariable(PathVariable);
            if (!string.IsNullOrWhiteSpace(env))
            {
                list.Add(env);
                list.Add(System.IO.Path.Combine(env, "libnccl.so.2"));
            }
            foreach (var python in new[] { "/usr/local/lib", "/usr/lib" })
            {
                foreach (var version in new[] { "3.13", "3.12", "3.11", "3.10" })
                {
                    foreach (var site in new[] { "dist-packages", "site-packages" })
                        list.Add($"{python}/python{version}/{site}/nvidia/nccl/lib/libnccl.so.2");
                }
            }
            list.Add("libnccl.so.2");
            return list.ToArray();
        }

        [DllImport(Library, EntryPoint = "ncclGetVersion")]
        private static extern Result GetVersion(out int version);

        [DllImport(Library, EntryPoint = "ncclGetUniqueId")]
        private static extern unsafe Result GetUniqueId(UniqueId* id);

        [DllImport(Library, EntryPoint = "ncclGetErrorString")]
        private static extern IntPtr GetErrorString(Result result);

        [DllImport(Library, EntryPoint = "ncclCommInitRank")]
        internal static extern Result CommInitRank(out IntPtr comm, int ranks, UniqueId id, int rank);

        [DllImport(Library, EntryPoint = "ncclCommDestroy")]
        internal static extern Result CommDestroy(IntPtr comm);

        [DllImport(Library, EntryPoint = "ncclAllReduce")]
        internal static extern Result AllReduce(IntPtr send, IntPtr receive, nuint count, int dataType, int op, IntPtr comm, IntPtr stream);

        [DllImport(Library, EntryPoint = "ncclGroupStart")]
        internal static extern Result GroupStart();

        [DllImport(Library, EntryPoint = "ncclGroupEnd")]
        internal static extern Result GroupEnd();
    }

    /// <summary>
    /// One rank of an NCCL communicator on this process's CUDA context, which must be the device's primary context
    /// (<see cref="PrimaryCudaContext"/>): <c>ncclCommInitRank</c> and every NCCL launch call <c>cudaSetDevice</c>, which
    /// makes the primary context current, and NCCL's buffers, kernels and streams live there. Averages run on a
    /// communication stream created non-blocking (so ILGPU's default stream, the legacy stream, does not serialize with
    /// it): each <see cref="StartAverage"/> records an event on the compute stream, makes the communication stream wait
    /// for it and queues ncclAllReduce(ncclAvg) in place; <see cref="WaitAll"/> records an event on the communication
    /// stream and makes the compute stream wait for it. No call blocks the host.
    /// </summary>
    public sealed class NcclCommunicator : ICommunicator
    {
        private readonly IntPtr comm;
        private readonly IntPtr stream;
        private readonly IntPtr computeReady;
        private readonly IntPtr averagesDone;
        private bool traced;
        private bool disposed;

        /// <summary>Joins rank <paramref name="rank"/> of <paramref name="worldSize"/> to the communicator of <paramref name="uniqueIdHex"/> (<see cref="Nccl.NewUniqueId"/>).</summary>
        public NcclCommunicator(XFormersContext context, int rank, int worldSize, string uniqueIdHex)
        {
            ArgumentNullException.ThrowIfNull(context);
            ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
            if (rank < 0 || rank >= worldSize)
                throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} of a world of {worldSize}.");
            var id = Nccl.ParseUniqueId(uniqueIdHex);
            if (!context.IsCuda)
                throw new InvalidOperationException($"NCCL needs a CUDA context; this one is {context.Description}.");
            var accelerator = context.Accelerator;
            if (!PrimaryCudaContext.IsPrimary(accelerator))
            {
                throw new InvalidOperationException(
                    "NCCL works in the device's primary CUDA context (its cudaSetDevice makes that one current), and ILGPU's buffers " +
                    "must live there too: create the context with PrimaryCudaContext.Create.");
            }
            Nccl.Load();
            Rank = rank;
            WorldSize = worldSize;
            CudaDriver.MakeCurrent(accelerator);
            CudaContextTrace.Log("before ncclCommInitRank", accelerator);
            Nccl.Check(Nccl.CommInitRank(out comm, worldSize, id, rank), $"ncclCommInitRank (rank {rank} of {worldSize})");
            CudaContextTrace.Log("after ncclCommInitRank", accelerator);
            IntPtr current = CudaDriver.Current();
            if (current != accelerator.NativePtr)
            {
                Nccl.CommDestroy(comm);
                throw new InvalidOperationException(
                    $"ncclCommInitRank left context 0x{current.ToInt64():x} current, not the accelerator's primary context 0x{accelerator.NativePtr.ToInt64():x}.");
            }
            CudaDriver.Check(CudaDriver.StreamCreate(out stream, CudaDriver.StreamNonBlocking), "cuStreamCreate");
            // One event each way is enough: cuStreamWaitEvent waits for the record current at the call, so recording the
            // event again afterwards never changes what an earlier wait waits for.
            CudaDriver.Check(CudaDriver.EventCreate(out computeReady, CudaDriver.EventDisableTiming), "cuEventCreate");
            CudaDriver.Check(CudaDriver.EventCreate(out averagesDone, CudaDriver.EventDisableTiming), "cuEventCreate");
            CudaContextTrace.Log("communication stream and events created", accelerator, CudaContextTrace.Handle.Stream("communication stream", stream));
        }

        public int Rank { get; }

        public int WorldSize { get; }

        public void StartAverage(DeviceLauncher launcher, ArrayView<float> data)
        {
            ArgumentNullException.ThrowIfNull(launcher);
            if (data.Length == 0)
                return;
            IntPtr pointer = data.LoadEffectiveAddressAsPtr();
            if (!traced)
            {
                traced = true;
                CudaContextTrace.Log("first ncclAllReduce", launcher.Accelerator,
                    CudaContextTrace.Handle.Pointer("gradients", pointer), CudaContextTrace.Handle.Stream("communication stream", stream));
            }
            CudaDriver.Check(CudaDriver.EventRecord(computeReady, ComputeStream(launcher)), "cuEventRecord");
            CudaDriver.Check(CudaDriver.StreamWaitEvent(stream, computeReady, 0), "cuStreamWaitEvent");
            Nccl.Check(Nccl.AllReduce(pointer, pointer, (nuint)data.Length, Nccl.Float32, Nccl.Avg, comm, stream), "ncclAllReduce");
        }

        public void WaitAll(DeviceLauncher launcher)
        {
            ArgumentNullException.ThrowIfNull(launcher);
            CudaDriver.Check(CudaDriver.EventRecord(averagesDone, stream), "cuEventRecord");
            CudaDriver.Check(CudaDriver.StreamWaitEvent(ComputeStream(launcher), averagesDone, 0), "cuStreamWaitEvent");
        }

        private static IntPtr ComputeStream(DeviceLauncher launcher) => ((CudaStream)launcher.Accelerator.DefaultStream).StreamPtr;

        public void Dispose()
        {
            if (disposed)
                return;
            disposed = true;
            foreach (var e in new[] { computeReady, averagesDone })
            {
                if (e != IntPtr.Zero)
                    CudaDriver.EventDestroy(e);
            }
            if (stream != IntPtr.Zero)
                CudaDriver.StreamDestroy(stream);
            if (comm != IntPtr.Zero)
                Nccl.CommDestroy(comm);
        }
    }
}
