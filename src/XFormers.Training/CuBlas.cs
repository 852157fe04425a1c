using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;

namespace XFormers.Training
{
    /// <summary>
    /// The few cuBLAS entry points the trainer needs, bound by our own P/Invoke (ILGPU.Algorithms only knows
    /// libcublas .so.10–.12 and fp32/fp64). The library is looked up as libcublas.so.13, then .so.12: first the
    /// file or folder in <c>XFORMERS_CUBLAS</c>, then CUDA toolkit folders (/usr/local/cuda*/lib64 and
    /// targets/…/lib), pip's nvidia-cublas wheels (site-packages/nvidia/{cu13,cu12,cublas}/lib), then the loader
    /// path. libcublasLt from the same folder is loaded first so libcublas finds it without LD_LIBRARY_PATH.
    /// </summary>
    internal static class CuBlas
    {
        public const string Library = "xformers_cublas";
        public const string PathVariable = "XFORMERS_CUBLAS";

        private static readonly object Gate = new();
        private static bool resolverSet;
        private static IntPtr handle;
        private static string? loadedFrom;
        private static string? failure;

        internal enum Operation
        {
            N = 0,
            T = 1,
        }

        /// <summary>cudaDataType_t values.</summary>
        internal enum DataType
        {
            R32F = 0,
            R16F = 2,
            R16BF = 14,
        }

        /// <summary>cublasComputeType_t: CUBLAS_COMPUTE_32F.</summary>
        public const int Compute32F = 68;

        /// <summary>CUBLAS_GEMM_DEFAULT.</summary>
        public const int GemmDefault = -1;

        /// <summary>Where the library was loaded from, or null.</summary>
        public static string? LoadedFrom
        {
            get
            {
                TryLoad();
                return loadedFrom;
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

        public static bool TryLoad()
        {
            lock (Gate)
            {
                if (!resolverSet)
                {
                    resolverSet = true;
                    NativeResolver.Register(Library, () => TryLoad() ? handle : IntPtr.Zero);
                    var tried = new List<string>();
                    foreach (var candidate in Candidates())
                    {
                        tried.Add(candidate);
                        string? dir = Path.GetDirectoryName(candidate);
                        string lt = Path.GetFileName(candidate).Replace("libcublas.", "libcublasLt.", StringComparison.Ordinal);
                        if (!string.IsNullOrEmpty(dir) && File.Exists(Path.Combine(dir, lt)))
                            NativeLibrary.TryLoad(Path.Combine(dir, lt), out _);
                        if (NativeLibrary.TryLoad(candidate, out handle))
                        {
                            loadedFrom = candidate;
                            break;
                        }
                    }
                    if (handle == IntPtr.Zero)
                        failure = "libcublas.so.13 or .so.12 not found; tried " + string.Join(", ", tried.Distinct()) + $". Set {PathVariable} to the library or its folder.";
                }
                return handle != IntPtr.Zero;
            }
        }

        private static IEnumerable<string> Candidates()
        {
            string[] names = { "libcublas.so.13", "libcublas.so.12" };
            var env = Environment.GetEnvironmentVariable(PathVariable);
            if (!string.IsNullOrWhiteSpace(env))
            {
                if (File.Exists(env))
                    yield return env;
                foreach (var n in names)
                    yield return Path.Combine(env, n);
            }
            var dirs = new List<string>();
            foreach (var root in new[] { "/usr/local/cuda", "/opt/cuda" })
            {
                dirs.Add(Path.Combine(root, "lib64"));
                dirs.Add(Path.Combine(root, "targets/x86_64-linux/lib"));
            }
            dirs.AddRange(Glob("/usr/local", "cuda-*").OrderByDescending(d => d, StringComparer.Ordinal)
                .SelectMany(d => new[] { Path.Combine(d, "lib64"), Path.Combine(d, "targets/x86_64-linux/lib") }));
            foreach (var sitePackages in SitePackages())
            {
                foreach (var sub in new[] { "nvidia/cu13/lib", "nvidia/cublas/lib", "nvidia/cu12/lib" })
                    dirs.Add(Path.Combine(sitePackages, sub));
            }
            dirs.Add("/usr/lib/x86_64-linux-gnu");
            foreach (var n in names)
            {
                foreach (var d in dirs)
                {
                    var file = Path.Combine(d, n);
                    if (File.Exists(file))
                        yield return file;
                }
            }
            foreach (var n in names)
                yield return n;
        }

        private static IEnumerable<string> SitePackages()
        {
            var roots = new List<string> { "/usr/lib", "/usr/local/lib", "/opt/conda/lib" };
            roots.AddRange(Glob("/opt", "*").SelectMany(d => new[] { Path.Combine(d, ".venv/lib"), Path.Combine(d, "lib"), Path.Combine(d, "venv/lib") }));
            var home = Environment.GetEnvironmentVariable("HOME");
            if (!string.IsNullOrEmpty(home))
                roots.Add(Path.Combine(home, ".local/lib"));
            var venv = Environment.GetEnvironmentVariable("VIRTUAL_ENV");
            if (!string.IsNullOrEmpty(venv))
                roots.Add(Path.Combine(venv, "lib"));
            foreach (var root in roots)
            {
                foreach (var python in Glob(root, "python3*"))
                {
                    yield return Path.Combine(python, "site-packages");
                    yield return Path.Combine(python, "dist-packages");
                }
            }
        }

        private static IEnumerable<string> Glob(string dir, string pattern)
        {
            try
            {
                return Directory.Exists(dir) ? Directory.GetDirectories(dir, pattern) : Array.Empty<string>();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return Array.Empty<string>();
            }
        }

        public static void Check(int status, string call)
        {
            if (status != 0)
                throw new InvalidOperationException($"{call} failed with cublasStatus_t {status}{StatusName(status)}.");
        }

        private static string StatusName(int status) => status switch
        {
            1 => " (NOT_INITIALIZED)",
            3 => " (ALLOC_FAILED)",
            7 => " (INVALID_VALUE)",
            8 => " (ARCH_MISMATCH)",
            11 => " (MAPPING_ERROR)",
            13 => " (EXECUTION_FAILED)",
            14 => " (INTERNAL_ERROR)",
            15 => " (NOT_SUPPORTED)",
            _ => "",
        };

        [DllImport(Library, EntryPoint = "cublasCreate_v2")]
        public static extern int Create(out IntPtr handle);

        [DllImport(Library, EntryPoint = "cublasDestroy_v2")]
        public static extern int Destroy(IntPtr handle);

        [DllImport(Library, EntryPoint = "cublasSetStream_v2")]
        public static extern int SetStream(IntPtr handle, IntPtr stream);

        [DllImport(Library, EntryPoint = "cublasGemmEx")]
        public static extern unsafe int GemmEx(
            IntPtr handle, Operation transa, Operation transb, int m, int n, int k,
            float* alpha, IntPtr a, DataType aType, int lda, IntPtr b, DataType bType, int ldb,
            float* beta, IntPtr c, DataType cType, int ldc, int computeType, int algo);
    }
}
