using System;
using System.Collections.Concurrent;
using ILGPU.Runtime;

namespace XFormers
{
    /// <summary>
    /// Kernels compiled for each accelerator, shared by every variant and reference: compiled once on first use, and
    /// dropped when the owning <see cref="XFormersContext"/> is disposed, so a disposed accelerator (and what it compiled)
    /// is not kept alive by a cache entry.
    /// </summary>
    internal static class KernelCache
    {
        private static readonly ConcurrentDictionary<Accelerator, ConcurrentDictionary<object, object>> Compiled = new();

        /// <summary>Accelerators that hold compiled kernels now (for tests of the cache's lifetime).</summary>
        public static int AcceleratorCount => Compiled.Count;

        /// <summary>The value compiled for <paramref name="key"/> on <paramref name="accelerator"/>, compiling it on first use.</summary>
        public static TValue GetOrAdd<TKey, TValue>(Accelerator accelerator, TKey key, Func<Accelerator, TKey, TValue> compile)
            where TKey : notnull
            where TValue : class
        {
            var kernels = Compiled.GetOrAdd(accelerator, _ => new ConcurrentDictionary<object, object>());
            return (TValue)kernels.GetOrAdd(key, k => compile(accelerator, (TKey)k));
        }

        /// <summary>Whether <paramref name="key"/> has been compiled for <paramref name="accelerator"/> already.</summary>
        public static bool Contains(Accelerator accelerator, object key) =>
            Compiled.TryGetValue(accelerator, out var kernels) && kernels.ContainsKey(key);

        /// <summary>Forgets every kernel compiled for <paramref name="accelerator"/> (called when its context is disposed).</summary>
        public static void Release(Accelerator accelerator) => Compiled.TryRemove(accelerator, out _);
    }
}
