using System;
using System.Threading;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>Which accelerator a <see cref="XFormersContext"/> runs on.</summary>
    public enum AcceleratorPreference
    {
        /// <summary>CUDA when a device is present, else the CPU; <c>XFORMERS_DEVICE=cpu|cuda</c> overrides.</summary>
        Auto = 0,

        /// <summary>ILGPU's CPU accelerator (multi-threaded, no GPU needed).</summary>
        Cpu = 1,

        /// <summary>The first CUDA device; fails when none is present.</summary>
        Cuda = 2,
    }

    /// <summary>
    /// An ILGPU context and the accelerator the tensors and kernels of this library live on.
    /// </summary>
    public sealed class XFormersContext : IDisposable
    {
        /// <summary>Environment variable that forces the device: <c>cpu</c> or <c>cuda</c>.</summary>
        public const string DeviceVariable = "XFORMERS_DEVICE";

        /// <summary>Threads per group the CPU accelerator allows (ILGPU's default CPU device allows 16).</summary>
        public const int CpuMaxGroupSize = 128;

        private static readonly object SharedLock = new();
        private static XFormersContext? shared;

        private readonly Accelerator accelerator;
        private volatile bool disposed;

        private XFormersContext(Context context, Accelerator accelerator)
        {
            IlgpuContext = context;
            this.accelerator = accelerator;
        }

        /// <summary>The ILGPU context.</summary>
        public Context IlgpuContext { get; }

        /// <summary>The accelerator every tensor of this context lives on; <see cref="ObjectDisposedException"/> after <see cref="Dispose"/>.</summary>
        public Accelerator Accelerator
        {
            get
            {
                ThrowIfDisposed();
                return accelerator;
            }
        }

        /// <summary>Whether <see cref="Dispose"/> was called.</summary>
        public bool IsDisposed => disposed;

        /// <summary>
        /// Raised once by <see cref="Dispose"/>, after the accelerator and the ILGPU context are freed: for what must
        /// outlive the accelerator's buffers and kernels (a retained CUDA primary context).
        /// </summary>
        public event EventHandler? Disposed;

        /// <summary>
        /// The most bytes one tensor may take: the device's memory on CUDA; on the CPU, the memory the runtime reports
        /// as available to the process.
        /// </summary>
        public long MemoryLimit => IsCuda
            ? Accelerator.MemorySize
            : Math.Min(Accelerator.MemorySize, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);

        /// <summary><see cref="ObjectDisposedException"/> naming <see cref="XFormersContext"/> once the context is disposed.</summary>
        internal void ThrowIfDisposed()
        {
            if (disposed)
                throw new ObjectDisposedException(nameof(XFormersContext), "The XFormersContext was disposed; create a new one.");
        }

        /// <summary>True on a CUDA device.</summary>
        public bool IsCuda => accelerator.AcceleratorType == AcceleratorType.Cuda;

        /// <summary>True on ILGPU's CPU accelerator.</summary>
        public bool IsCpu => accelerator.AcceleratorType == AcceleratorType.CPU;

        /// <summary>A one-line description: kind, name, memory.</summary>
        public string Description => IsCuda
            ? $"CUDA {accelerator.Name} ({accelerator.MemorySize / (1024 * 1024)} MiB, {accelerator.NumMultiprocessors} SMs)"
            : $"CPU accelerator ({accelerator.NumMultiprocessors} threads of groups, up to {accelerator.MaxNumThreadsPerGroup} threads per group)";

        /// <summary>
        /// A process-wide context created on first use with <see cref="AcceleratorPreference.Auto"/>.
        /// </summary>
        public static XFormersContext Shared
        {
            get
            {
                lock (SharedLock)
                    return shared ??= Create();
            }
        }

        /// <summary>Reads <c>XFORMERS_DEVICE</c>: cpu, cuda, or unset/auto.</summary>
        public static AcceleratorPreference PreferenceFromEnvironment()
        {
            var value = Environment.GetEnvironmentVariable(DeviceVariable)?.Trim().ToLowerInvariant();
            return value switch
            {
                null or "" or "auto" => AcceleratorPreference.Auto,
                "cpu" => AcceleratorPreference.Cpu,
                "cuda" or "gpu" => AcceleratorPreference.Cuda,
                _ => throw new ArgumentException($"{DeviceVariable}='{value}' is not one of cpu, cuda, auto.", DeviceVariable),
            };
        }

        /// <summary>
        /// Creates a context. <paramref name="preference"/> Auto honours <c>XFORMERS_DEVICE</c>, then picks CUDA
        /// when present, else the CPU.
        /// </summary>
        public static XFormersContext Create(AcceleratorPreference preference = AcceleratorPreference.Auto)
        {
            if (preference == AcceleratorPreference.Auto)
                preference = PreferenceFromEnvironment();

            if (preference != AcceleratorPreference.Cpu)
            {
                var context = Context.Create(builder => builder.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2).Inlining(InliningMode.Aggressive));
                KernelIntrinsics.Register(context);
                var cuda = context.GetCudaDevices();
                if (cuda.Count > 0)
                    return new XFormersContext(context, cuda[0].CreateCudaAccelerator(context));
                context.Dispose();
                if (preference == AcceleratorPreference.Cuda)
                    throw new InvalidOperationException($"No CUDA device was found ({DeviceVariable} or the caller asked for cuda).");
            }
            return CreateCpu();
        }

        /// <summary>
        /// A CPU context whose groups may have up to <see cref="CpuMaxGroupSize"/> threads, running
        /// <paramref name="parallelGroups"/> groups at once (default: one per core).
        /// </summary>
        public static XFormersContext CreateCpu(int? parallelGroups = null) => CreateCpu(parallelGroups, threadsPerWarp: 4);

        /// <summary>A CPU context with warps of <paramref name="threadsPerWarp"/> lanes (32 runs the tensor-core kernels' scalar twins).</summary>
        internal static XFormersContext CreateCpu(int? parallelGroups, int threadsPerWarp)
        {
            int groups = Math.Max(1, parallelGroups ?? Environment.ProcessorCount);
            var device = new CPUDevice(numThreadsPerWarp: threadsPerWarp, numWarpsPerMultiprocessor: CpuMaxGroupSize / threadsPerWarp, numMultiprocessors: groups);
            var context = Context.Create(builder => builder.CPU(device).Inlining(InliningMode.Aggressive));
            KernelIntrinsics.Register(context);
            return new XFormersContext(context, context.CreateCPUAccelerator(0));
        }

        /// <summary>Waits for all work queued on the accelerator.</summary>
        public void Synchronize() => Accelerator.Synchronize();

        private long liveBytes;
        private long peakBytes;

        /// <summary>Bytes of accelerator memory held now by this context's tensors and work buffers.</summary>
        public long LiveBytes => Interlocked.Read(ref liveBytes);

        /// <summary>
        /// The most bytes held at once since the last <see cref="ResetPeakBytes"/> (like PyTorch's
        /// <c>max_memory_allocated</c>, counting this library's allocations).
        /// </summary>
        public long PeakBytes => Interlocked.Read(ref peakBytes);

        /// <summary>Starts a new peak measurement at the bytes held now.</summary>
        public void ResetPeakBytes() => Interlocked.Exchange(ref peakBytes, Interlocked.Read(ref liveBytes));

        /// <summary>Records an allocation (positive) or a release (negative).</summary>
        internal void TrackAllocation(long bytes)
        {
            long now = Interlocked.Add(ref liveBytes, bytes);
            long peak;
            while (now > (peak = Interlocked.Read(ref peakBytes)) && Interlocked.CompareExchange(ref peakBytes, now, peak) != peak)
            {
            }
        }

        private readonly MemoryBuffer1D<float, Stride1D.Dense>?[] scratch = new MemoryBuffer1D<float, Stride1D.Dense>?[4];

        /// <summary>Held while a sequence of launches that shares <see cref="Scratch"/> is enqueued.</summary>
        internal object LaunchLock { get; } = new();

        /// <summary>
        /// A float work buffer of at least <paramref name="length"/> elements in slot <paramref name="slot"/>, kept
        /// for the context's lifetime. Launches are stream-ordered, so callers that enqueue under
        /// <see cref="LaunchLock"/> may reuse it without waiting; growing it waits for work in flight first.
        /// </summary>
        internal ArrayView<float> Scratch(int slot, long length)
        {
            var buffer = scratch[slot];
            if (buffer is null || buffer.Length < length)
            {
                if (buffer is not null)
                {
                    Accelerator.Synchronize();
                    TrackAllocation(-buffer.LengthInBytes);
                    buffer.Dispose();
                }
                buffer = scratch[slot] = Accelerator.Allocate1D<float>(Math.Max(1, length));
                TrackAllocation(buffer.LengthInBytes);
            }
            return buffer.View.SubView(0, Math.Max(1, length));
        }

        /// <summary>Frees the accelerator, its tensors' storage and the kernels compiled for it.</summary>
        public void Dispose()
        {
            lock (SharedLock)
            {
                if (disposed)
                    return;
                disposed = true;
                if (ReferenceEquals(shared, this))
                    shared = null;
            }
            lock (LaunchLock)
            {
                foreach (var buffer in scratch)
                    buffer?.Dispose();
            }
            KernelCache.Release(accelerator);
            BlockMasks.Release(accelerator);
            accelerator.Dispose();
            IlgpuContext.Dispose();
            Disposed?.Invoke(this, EventArgs.Empty);
        }

        public override string ToString() => Description;
    }
}
