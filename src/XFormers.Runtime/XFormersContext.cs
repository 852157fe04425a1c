using System;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

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

        private XFormersContext(Context context, Accelerator accelerator)
        {
            IlgpuContext = context;
            Accelerator = accelerator;
        }

        /// <summary>The ILGPU context.</summary>
        public Context IlgpuContext { get; }

        /// <summary>The accelerator every tensor of this context lives on.</summary>
        public Accelerator Accelerator { get; }

        /// <summary>True on a CUDA device.</summary>
        public bool IsCuda => Accelerator.AcceleratorType == AcceleratorType.Cuda;

        /// <summary>True on ILGPU's CPU accelerator.</summary>
        public bool IsCpu => Accelerator.AcceleratorType == AcceleratorType.CPU;

        /// <summary>A one-line description: kind, name, memory.</summary>
        public string Description => IsCuda
            ? $"CUDA {Accelerator.Name} ({Accelerator.MemorySize / (1024 * 1024)} MiB, {Accelerator.NumMultiprocessors} SMs)"
            : $"CPU accelerator ({Accelerator.NumMultiprocessors} threads of groups, up to {Accelerator.MaxNumThreadsPerGroup} threads per group)";

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
                var context = Context.Create(builder => builder.Cuda().Optimize(OptimizationLevel.O2).Inlining(InliningMode.Aggressive).EnableAlgorithms());
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
            return new XFormersContext(context, context.CreateCPUAccelerator(0));
        }

        /// <summary>Waits for all work queued on the accelerator.</summary>
        public void Synchronize() => Accelerator.Synchronize();

        public void Dispose()
        {
            lock (SharedLock)
            {
                if (ReferenceEquals(shared, this))
                    shared = null;
            }
            Accelerator.Dispose();
            IlgpuContext.Dispose();
        }

        public override string ToString() => Description;
    }
}
