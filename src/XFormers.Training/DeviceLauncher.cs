using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Reflection;
using System.Threading.Tasks;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace XFormers.Training
{
    /// <summary>
    /// Runs the trainer's elementwise and row kernels: implicitly grouped ILGPU kernels
    /// (<c>static void Kernel(Index1D i, TArgs args)</c>, one thread per element or per row). On a GPU they are
    /// compiled by ILGPU and launched on the accelerator's default stream, in order with the attention kernels
    /// and cuBLAS. On ILGPU's CPU accelerator the same method is called from a <see cref="Parallel.For(int, int, Action{int})"/>
    /// over the buffers' host memory: the CPU accelerator runs each launch on a thread per lane with per-access
    /// checks and pays about a millisecond per launch, which the trainer's hundred launches a step cannot afford.
    /// <see cref="UseIlgpuOnCpu"/> forces the ILGPU path (tests use it to exercise the code the GPU compiles).
    /// </summary>
    public sealed class DeviceLauncher
    {
        private const int CpuChunk = 2048;
        private readonly ConcurrentDictionary<MethodInfo, Delegate> loaded = new();
        /// <summary>Each grouped kernel's CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, asked once.</summary>
        private readonly ConcurrentDictionary<MethodInfo, int> groupLimits = new();

        public DeviceLauncher(XFormersContext context)
        {
            Context = context ?? throw new ArgumentNullException(nameof(context));
        }

        public XFormersContext Context { get; }

        public Accelerator Accelerator => Context.Accelerator;

        /// <summary>True when kernels run as host loops (the CPU accelerator, unless <see cref="UseIlgpuOnCpu"/>).</summary>
        public bool RunsOnHost => Context.IsCpu && !UseIlgpuOnCpu;

        /// <summary>Launch through ILGPU even on the CPU accelerator (slow; for tests of the compiled path).</summary>
        public bool UseIlgpuOnCpu { get; init; }

        /// <summary>
        /// When set, every launch and every <see cref="Measure"/> waits for the device before and after and adds
        /// its wall time here, by kernel name: a coarse per-operation profile (the waits make it slower than a
        /// real step, by about one launch latency per entry).
        /// </summary>
        public Dictionary<string, (int Count, double Seconds)>? Profile { get; set; }

        /// <summary>Runs <paramref name="work"/>, timed under <paramref name="label"/> when <see cref="Profile"/> is set.</summary>
        public void Measure(string label, Action work)
        {
            ArgumentNullException.ThrowIfNull(work);
            if (Profile is null)
            {
                work();
                return;
            }
            Synchronize();
            long start = Stopwatch.GetTimestamp();
            work();
            Synchronize();
            var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
            Profile[label] = Profile.TryGetValue(label, out var entry) ? (entry.Count + 1, entry.Seconds + elapsed) : (1, elapsed);
        }

        /// <summary>Runs <paramref name="kernel"/> for every index in [0, <paramref name="count"/>).</summary>
        public void Launch<TArgs>(Action<Index1D, TArgs> kernel, long count, TArgs args)
            where TArgs : struct
        {
            if (Profile is not null)
                Measure(kernel.Method.DeclaringType?.Name + "." + kernel.Method.Name, () => Run(kernel, count, args));
            else
                Run(kernel, count, args);
        }

        private void Run<TArgs>(Action<Index1D, TArgs> kernel, long count, TArgs args)
            where TArgs : struct
        {
            if (count <= 0)
                return;
            if (count > int.MaxValue)
                throw new ArgumentOutOfRangeException(nameof(count), $"{count} threads exceed one launch.");
            int n = (int)count;
            if (RunsOnHost)
            {
                int chunks = (n + CpuChunk - 1) / CpuChunk;
                if (chunks == 1)
                {
                    for (int i = 0; i < n; i++)
                        kernel(i, args);
                    return;
                }
                Parallel.For(0, chunks, c =>
                {
                    int end = Math.Min(n, (c + 1) * CpuChunk);
                    for (int i = c * CpuChunk; i < end; i++)
                        kernel(i, args);
                });
                return;
            }
            var launcher = (Action<Index1D, TArgs>)loaded.GetOrAdd(kernel.Method, _ => Accelerator.LoadAutoGroupedStreamKernel(kernel));
            launcher(n, args);
        }

        /// <summary>
        /// Launches an explicitly grouped kernel through ILGPU (never as a host loop: it uses group and warp
        /// intrinsics): <paramref name="groups"/> groups of <paramref name="groupSize"/> threads.
        /// </summary>
        public void LaunchGrouped<TArgs>(Action<TArgs> kernel, int groups, int groupSize, TArgs args)
            where TArgs : struct =>
            LaunchGrouped(kernel, groups, groupSize, default, args);

        /// <summary>As <see cref="LaunchGrouped{TArgs}(Action{TArgs}, int, int, TArgs)"/>, with dynamic shared memory for each group.</summary>
        internal void LaunchGrouped<TArgs>(Action<TArgs> kernel, int groups, int groupSize, SharedMemoryConfig sharedMemory, TArgs args)
            where TArgs : struct
        {
            if (groups <= 0)
                return;
            var launcher = (Action<KernelConfig, TArgs>)loaded.GetOrAdd(kernel.Method, _ => Accelerator.LoadStreamKernel(kernel));
            var config = new KernelConfig(groups, groupSize, sharedMemory);
            if (Profile is not null)
                Measure(kernel.Method.DeclaringType?.Name + "." + kernel.Method.Name, () => launcher(config, args));
            else
                launcher(config, args);
        }

        /// <summary>
        /// The largest group size, from <paramref name="preferred"/> down by halves (whole warps), at which an explicitly grouped kernel can
        /// start: ptxas does not know the group size ILGPU will launch, and a kernel compiled to more than 64 registers a
        /// thread cannot start 1024 threads (<c>CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK</c>, asked once per kernel).
        /// </summary>
        internal int GroupSizeFor<TArgs>(Action<TArgs> kernel, int preferred)
            where TArgs : struct
        {
            int size = Math.Min(preferred, Accelerator.MaxNumThreadsPerGroup);
            if (Accelerator is not CudaAccelerator)
                return size;
            int limit = groupLimits.GetOrAdd(kernel.Method, _ =>
            {
                var compiled = (CudaKernel)((Action<KernelConfig, TArgs>)loaded.GetOrAdd(kernel.Method, _ => Accelerator.LoadStreamKernel(kernel))).GetKernel();
                return CudaDriver.MaxThreadsPerBlock(compiled.FunctionPtr);
            });
            while (size > limit && size > Accelerator.WarpSize)
                size = Math.Max(Accelerator.WarpSize, size / 2 / Accelerator.WarpSize * Accelerator.WarpSize);
            return size;
        }

        /// <summary>Sets a view to zero (queued on the accelerator; immediate on the host).</summary>
        public void Zero<T>(ArrayView<T> view)
            where T : unmanaged
        {
            if (view.Length > 0)
                view.MemSetToZero();
        }

        /// <summary>Waits for queued work: before host code reads what kernels wrote.</summary>
        public void Synchronize() => Accelerator.Synchronize();
    }
}
