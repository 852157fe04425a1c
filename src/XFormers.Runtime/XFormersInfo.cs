using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Text;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace XFormers
{
    /// <summary>One device an ILGPU backend found.</summary>
    public sealed record DeviceInfo(string Backend, string Name, long MemoryBytes, int MaxGroupSize, int Multiprocessors);

    /// <summary>A registered variant, whether the given accelerator can run it, and which kernels it takes there.</summary>
    public sealed record VariantInfo(AttentionVariant Variant, string Assembly, bool CanRun, string Backend);

    /// <summary>
    /// What <c>python -m xformers.info</c> shows, for this library: versions, the devices ILGPU finds, the
    /// accelerator in use, and every registered attention variant with its constants.
    /// </summary>
    public sealed record XFormersInfo(
        string Version,
        string IlgpuVersion,
        string DotNetVersion,
        IReadOnlyList<DeviceInfo> Devices,
        IReadOnlyList<string> BackendNotes,
        string Accelerator,
        IReadOnlyList<VariantInfo> Variants)
    {
        /// <summary>Collects the report for a context (its accelerator decides <see cref="VariantInfo.CanRun"/>).</summary>
        public static XFormersInfo Collect(XFormersContext context)
        {
            ArgumentNullException.ThrowIfNull(context);
            var devices = new List<DeviceInfo>();
            var notes = new List<string>();
            devices.Add(new DeviceInfo("CPU", "ILGPU CPU accelerator", 0, XFormersContext.CpuMaxGroupSize, Environment.ProcessorCount));
            try
            {
                using var probe = Context.Create(builder => builder.Cuda());
                foreach (var device in probe.GetCudaDevices())
                    devices.Add(new DeviceInfo("CUDA", device.Name, device.MemorySize, device.MaxNumThreadsPerGroup, device.NumMultiprocessors));
                if (probe.GetCudaDevices().Count == 0)
                    notes.Add("CUDA: no device found");
            }
            catch (Exception ex) when (ex is DllNotFoundException or TypeInitializationException or InvalidOperationException or NotSupportedException)
            {
                notes.Add($"CUDA: unavailable ({ex.GetType().Name})");
            }

            var variants = AttentionRegistry.Variants
                .Select(k => new VariantInfo(k.Variant, k.DeclaringAssembly.GetName().Name ?? "?", k.CanRunOn(context), k.BackendOn(context.Accelerator)))
                .ToList();
            return new XFormersInfo(
                typeof(Fmha).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion?.Split('+')[0] ?? "?",
                typeof(Context).Assembly.GetName().Version?.ToString(3) ?? "?",
                Environment.Version.ToString(),
                devices,
                notes,
                context.Description,
                variants);
        }

        /// <summary>A plain-text report.</summary>
        public override string ToString()
        {
            var text = new StringBuilder();
            text.AppendLine($"XFormers for .NET {Version} (ILGPU {IlgpuVersion}, .NET {DotNetVersion})");
            text.AppendLine($"accelerator in use: {Accelerator}");
            foreach (var d in Devices)
                text.AppendLine($"device: {d.Backend,-5} {d.Name}{(d.MemoryBytes > 0 ? $", {d.MemoryBytes / (1024 * 1024)} MiB" : "")}, {d.Multiprocessors} multiprocessors, {d.MaxGroupSize} threads/group");
            foreach (var note in BackendNotes)
                text.AppendLine(note);
            text.AppendLine($"{Variants.Count} attention variants:");
            text.AppendLine("  name                                               mask                   bias    dtype    K    heads   tiles  bwd  runs kernels");
            foreach (var v in Variants)
            {
                var x = v.Variant;
                string heads = x.Heads > 0 ? $"{x.Heads}/{(x.KvHeads > 0 ? x.KvHeads : x.Heads)}" : "any";
                text.AppendLine($"  {Short(x.Name),-50} {x.Mask,-22} {x.Bias + (x.BiasGradient ? "+d" : ""),-7} {x.DType,-8} {x.HeadDim,-4} {heads,-7} {x.BlockM}x{x.BlockN,-4} {(x.Backward ? "yes" : "no"),-4} {(v.CanRun ? "yes" : "no"),-4} {v.Backend}");
            }
            return text.ToString();
        }

        private static string Short(string name) => name.Length <= 50 ? name : "…" + name[^49..];
    }
}
