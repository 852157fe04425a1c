using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.IL;
using ILGPU.Backends.PTX;
using ILGPU.IR;
using ILGPU.IR.Intrinsics;

namespace XFormers.Kernels
{
    /// <summary>
    /// The kernels' helpers with a CUDA form and a CPU form: an inline-PTX instruction (<c>mma.sync</c>, <c>ldmatrix</c>,
    /// <c>ex2.approx</c> …) and its scalar twin. A helper that only branched on <c>CudaAsm.IsSupported</c> would reach
    /// ILGPU's PTX backend with its twin inlined at every call, since ILGPU folds that test only as it writes PTX: 1.4 MB of
    /// dead code in a 2 MB tensor-core forward, which ILGPU compiles and the driver parses. So each helper is an ILGPU
    /// intrinsic (<see cref="IntrinsicImplementationAttribute"/>) whose forms are methods of their own, named as the
    /// helper with <c>Ptx</c> or <c>Cpu</c> appended, and a context's backends replace a call to the helper with a call to
    /// the form of their kind before anything is inlined. The helper's own body, which branches as before, is what runs
    /// on the host and on ILGPU's CPU accelerator (it executes kernels as .NET code).
    /// </summary>
    internal static class KernelIntrinsics
    {
        private const BindingFlags Statics =
            BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly;

        private static readonly Type[] HelperTypes = [typeof(TensorCore), typeof(KernelMath), typeof(ElementMath)];

        /// <summary>Each helper and its two forms, found by name and parameter types.</summary>
        public static IReadOnlyList<(MethodInfo Helper, MethodInfo Ptx, MethodInfo Cpu)> Helpers { get; } = FindHelpers();

        /// <summary>
        /// Registers every helper's forms with <paramref name="context"/>; call it before creating an accelerator or a
        /// backend. A kernel that calls a helper does not compile on a context without them.
        /// </summary>
        public static void Register(Context context)
        {
            ArgumentNullException.ThrowIfNull(context);
            var manager = context.GetIntrinsicManager();
            foreach (var (helper, ptx, cpu) in Helpers)
            {
                manager.RegisterMethod(helper, new PTXIntrinsic(ptx, IntrinsicImplementationMode.Redirect));
                manager.RegisterMethod(helper, new CpuIntrinsic(cpu));
            }
        }

        private static (MethodInfo, MethodInfo, MethodInfo)[] FindHelpers()
        {
            var helpers = new List<(MethodInfo, MethodInfo, MethodInfo)>();
            foreach (var type in HelperTypes)
            {
                foreach (var helper in type.GetMethods(Statics).Where(m => m.IsDefined(typeof(IntrinsicImplementationAttribute))))
                    helpers.Add((helper, Form(helper, "Ptx"), Form(helper, "Cpu")));
            }
            return [.. helpers];
        }

        private static MethodInfo Form(MethodInfo helper, string suffix)
        {
            var parameters = helper.GetParameters().Select(p => p.ParameterType).ToArray();
            var form = helper.DeclaringType!.GetMethod(helper.Name + suffix, Statics, parameters);
            if (form is null || form.ReturnType != helper.ReturnType)
            {
                throw new InvalidOperationException(
                    $"{helper.DeclaringType.Name}.{helper.Name} has no {helper.Name}{suffix} with its parameters and return type.");
            }
            return form;
        }

        /// <summary>A helper's CPU form for ILGPU's IL backend (the CPU accelerator), as ILGPU.Algorithms registers its own.</summary>
        private sealed class CpuIntrinsic(MethodInfo target)
            : IntrinsicImplementation(BackendType.IL, target, IntrinsicImplementationMode.Redirect)
        {
            protected override bool CanHandleBackend(Backend backend) => backend is ILBackend;
        }
    }
}
