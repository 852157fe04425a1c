using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace XFormers.Training
{
    /// <summary>
    /// <c>XFORMERS_TRACE_CONTEXT=1</c>: one line on standard error per step that creates or uses CUDA state across
    /// libraries (the context switch, NCCL's init, cuBLAS's handle, the first all-reduce, the first GEMM), naming the context
    /// current on the thread, the one ILGPU binds (<c>Accelerator.NativePtr</c>), the device's primary context, and the
    /// context of a probe buffer ILGPU allocated plus of the step's own buffers and streams
    /// (<c>cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_CONTEXT)</c>, <c>cuStreamGetCtx</c>). The line ends with
    /// "one context" or with how many there are: one run of a failing job shows where they part.
    /// </summary>
    internal static class CudaContextTrace
    {
        public const string Variable = "XFORMERS_TRACE_CONTEXT";

        private static readonly ConditionalWeakTable<Accelerator, MemoryBuffer1D<float, Stride1D.Dense>> Probes = new();

        public static bool Enabled { get; } = IsOn(Environment.GetEnvironmentVariable(Variable));

        internal static bool IsOn(string? value) =>
            value?.Trim().ToLowerInvariant() is "1" or "true" or "yes" or "on";

        /// <summary>A buffer or stream whose context the line reports.</summary>
        internal readonly record struct Handle(string Name, IntPtr Value, bool IsStream)
        {
            public static Handle Pointer(string name, IntPtr pointer) => new(name, pointer, false);

            public static Handle Stream(string name, IntPtr stream) => new(name, stream, true);
        }

        /// <summary>Writes the line for <paramref name="step"/> when tracing is on and the accelerator is CUDA's.</summary>
        public static void Log(string step, Accelerator accelerator, params Handle[] handles)
        {
            if (!Enabled || accelerator is not CudaAccelerator cuda)
                return;
            IntPtr current = CudaDriver.Current();
            var probe = Probes.GetValue(accelerator, a => a.Allocate1D<float>(1));
            var contexts = new List<(string, IntPtr)> { ("ILGPU buffer", CudaDriver.ContextOf(probe.NativePtr)) };
            contexts.AddRange(handles.Select(h => (h.Name, h.IsStream ? CudaDriver.ContextOfStream(h.Value) : CudaDriver.ContextOf(h.Value))));
            string rank = Environment.GetEnvironmentVariable(RankEnvironment.RankVariable) ?? "0";
            Console.Error.WriteLine(Format(rank, step, current, accelerator.NativePtr, CudaDriver.ActivePrimary(cuda.DeviceId), contexts));
        }

        /// <summary>The trace line: every handle, then "one context" or how many distinct ones appear.</summary>
        internal static string Format(string rank, string step, IntPtr current, IntPtr ilgpu, IntPtr primary, IReadOnlyList<(string Name, IntPtr Context)> contexts)
        {
            var all = new List<(string Name, IntPtr Context)> { ("current", current), ("ILGPU", ilgpu), ("primary", primary) };
            all.AddRange(contexts);
            var distinct = all.Where(c => c.Context != IntPtr.Zero).Select(c => c.Context).Distinct().ToList();
            string verdict = distinct.Count switch
            {
                0 => "no context",
                1 => "one context",
                _ => $"{distinct.Count} contexts: " + string.Join("; ", distinct.Select(d => string.Join(", ", all.Where(c => c.Context == d).Select(c => c.Name)))),
            };
            string handles = string.Join(", ", all.Select(c => $"{c.Name} {Hex(c.Context)}"));
            return $"context [rank {rank}] {step}: {handles} | {verdict}";
        }

        private static string Hex(IntPtr handle) =>
            handle == IntPtr.Zero ? "none" : "0x" + handle.ToInt64().ToString("x", CultureInfo.InvariantCulture);
    }
}
