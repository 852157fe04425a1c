using System;
using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;

namespace XFormers.Training
{
    /// <summary>
    /// The training assembly's one DllImport resolver: .NET takes a single resolver per assembly (a second call throws), so
    /// each native library (cuBLAS, NCCL) registers how it is found and this dispatches by name.
    /// </summary>
    internal static class NativeResolver
    {
        private static readonly ConcurrentDictionary<string, Func<IntPtr>> Loaders = new(StringComparer.Ordinal);
        private static readonly object Gate = new();
        private static bool set;

        /// <summary>Resolves <paramref name="library"/> through <paramref name="load"/> (a handle, or zero for the default search).</summary>
        public static void Register(string library, Func<IntPtr> load)
        {
            Loaders[library] = load;
            lock (Gate)
            {
                if (set)
                    return;
                set = true;
                NativeLibrary.SetDllImportResolver(typeof(NativeResolver).Assembly, Resolve);
            }
        }

        private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
            Loaders.TryGetValue(name, out var load) ? load() : IntPtr.Zero;
    }
}
