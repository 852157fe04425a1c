using System;
using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using XFormers.Kernels;
using Half = ILGPU.Half;

namespace XFormers.Training
{
    /// <summary>Which implementation runs a <see cref="Gemm"/>.</summary>
    public enum GemmBackend
    {
        /// <summary>cuBLAS on CUDA when the library loads, else the ILGPU kernel; the managed SIMD loop on the CPU.</summary>
        Auto = 0,

        /// <summary><c>cublasGemmEx</c> (CUDA only): fp16/bf16 inputs on tensor cores, fp32 accumulation.</summary>
        CuBlas = 1,

        /// <summary>A managed SIMD loop over the CPU accelerator's buffers (CPU only).</summary>
        Managed = 2,

        /// <summary>A plain ILGPU kernel, one thread per output element: the fallback when cuBLAS is absent.</summary>
        Kernel = 3,
    }

    /// <summary>
    /// Row-major matrix products for the trainer: C[M,N] = α·op(A)[M,K]·op(B)[K,N] + β·C, where op(A) is A
    /// (stored M × K with row stride <c>lda</c>) or Aᵀ (A stored K × M), likewise for B. A and B share an
    /// element type; C is that type or float (weight gradients, and the fp32 residual stream that a projection
    /// adds into with β = 1). Arithmetic is fp32 on every backend.
    /// </summary>
    public sealed class Gemm : IDisposable
    {
        private readonly DeviceLauncher launcher;
        private IntPtr cublas;
        private bool traced;

        private Gemm(DeviceLauncher launcher, GemmBackend backend)
        {
            this.launcher = launcher;
            Backend = backend;
            if (backend == GemmBackend.CuBlas)
            {
                // The handle and its workspace belong to the context current now (cuBLAS: "tied to the current device"):
                // the accelerator's, set through the driver since ILGPU's Bind() may think it is bound already.
                var accelerator = launcher.Accelerator;
                CudaDriver.MakeCurrent(accelerator);
                CudaContextTrace.Log("before cublasCreate", accelerator);
                CuBlas.Check(CuBlas.Create(out cublas), "cublasCreate");
                var stream = ((CudaStream)accelerator.DefaultStream).StreamPtr;
                CuBlas.Check(CuBlas.SetStream(cublas, stream), "cublasSetStream");
                CudaContextTrace.Log("after cublasCreate and cublasSetStream", accelerator);
            }
        }

        public GemmBackend Backend { get; }

        /// <summary>A line for logs: the backend and, for cuBLAS, the library file.</summary>
        public string Description => Backend == GemmBackend.CuBlas ? $"cuBLAS ({CuBlas.LoadedFrom})" : Backend.ToString();

        /// <summary>Picks the backend for the launcher's accelerator (see <see cref="GemmBackend.Auto"/>).</summary>
        public static Gemm Create(DeviceLauncher launcher, GemmBackend preference = GemmBackend.Auto)
        {
            ArgumentNullException.ThrowIfNull(launcher);
            bool cuda = launcher.Context.IsCuda;
            var backend = preference switch
            {
                GemmBackend.Auto when cuda => CuBlas.TryLoad() ? GemmBackend.CuBlas : GemmBackend.Kernel,
                GemmBackend.Auto => launcher.RunsOnHost ? GemmBackend.Managed : GemmBackend.Kernel,
                GemmBackend.CuBlas when !cuda => throw new ArgumentException("cuBLAS needs a CUDA context.", nameof(preference)),
                GemmBackend.CuBlas when !CuBlas.TryLoad() => throw new InvalidOperationException(CuBlas.Failure),
                GemmBackend.Managed when !launcher.Context.IsCpu => throw new ArgumentException("The managed GEMM reads host memory: CPU accelerator only.", nameof(preference)),
                _ => preference,
            };
            return new Gemm(launcher, backend);
        }

        /// <summary>C = α·op(A)·op(B) + β·C (row-major; see the class remarks).</summary>
        public void Run<TA, TAConvert, TC, TCConvert>(
            bool transA, bool transB, int m, int n, int k, float alpha,
            ArrayView<TA> a, int lda, ArrayView<TA> b, int ldb, float beta, ArrayView<TC> c, int ldc)
            where TA : unmanaged
            where TAConvert : struct, IElementConvert<TA>
            where TC : unmanaged
            where TCConvert : struct, IElementConvert<TC>
        {
            if (m == 0 || n == 0)
                return;
            CheckExtent(a.Length, transA ? k : m, transA ? m : k, lda, "a");
            CheckExtent(b.Length, transB ? n : k, transB ? k : n, ldb, "b");
            CheckExtent(c.Length, m, n, ldc, "c");
            if (launcher.Profile is not null)
                launcher.Measure($"GEMM ({Backend})", () => Dispatch<TA, TAConvert, TC, TCConvert>(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
            else
                Dispatch<TA, TAConvert, TC, TCConvert>(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        }

        private void Dispatch<TA, TAConvert, TC, TCConvert>(
            bool transA, bool transB, int m, int n, int k, float alpha,
            ArrayView<TA> a, int lda, ArrayView<TA> b, int ldb, float beta, ArrayView<TC> c, int ldc)
            where TA : unmanaged
            where TAConvert : struct, IElementConvert<TA>
            where TC : unmanaged
            where TCConvert : struct, IElementConvert<TC>
        {
            switch (Backend)
            {
                case GemmBackend.CuBlas:
                    RunCuBlas(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                    break;
                case GemmBackend.Managed:
                    launcher.Synchronize();
                    ManagedGemm.Run<TA, TC, TCConvert>(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                    break;
                default:
                    launcher.Launch(
                        GemmKernel<TA, TAConvert, TC, TCConvert>,
                        (long)m * n,
                        new GemmArgs<TA, TC>
                        {
                            A = a, B = b, C = c, M = m, N = n, K = k, Lda = lda, Ldb = ldb, Ldc = ldc,
                            TransA = transA ? 1 : 0, TransB = transB ? 1 : 0, Alpha = alpha, Beta = beta,
                        });
                    break;
            }
        }

        private static void CheckExtent(long length, int rows, int cols, int ld, string name)
        {
            if (rows == 0 || cols == 0)
                return;
            if (ld < cols)
                throw new ArgumentException($"leading dimension {ld} of {name} is smaller than its {cols} columns.", name);
            if ((long)(rows - 1) * ld + cols > length)
                throw new ArgumentException($"{name} needs {(long)(rows - 1) * ld + cols} elements ({rows} × {cols}, stride {ld}) but the view has {length}.", name);
        }

        private unsafe void RunCuBlas<TA, TC>(
            bool transA, bool transB, int m, int n, int k, float alpha,
            ArrayView<TA> a, int lda, ArrayView<TA> b, int ldb, float beta, ArrayView<TC> c, int ldc)
            where TA : unmanaged
            where TC : unmanaged
        {
            // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands.
            CudaDriver.MakeCurrent(launcher.Accelerator);
            if (!traced)
            {
                traced = true;
                CudaContextTrace.Log("first cublasGemmEx", launcher.Accelerator,
                    CudaContextTrace.Handle.Pointer("A", a.LoadEffectiveAddressAsPtr()), CudaContextTrace.Handle.Pointer("B", b.LoadEffectiveAddressAsPtr()),
                    CudaContextTrace.Handle.Pointer("C", c.LoadEffectiveAddressAsPtr()));
            }
            var status = CuBlas.GemmEx(
                cublas,
                transB ? CuBlas.Operation.T : CuBlas.Operation.N,
                transA ? CuBlas.Operation.T : CuBlas.Operation.N,
                n, m, k,
                &alpha,
                b.LoadEffectiveAddressAsPtr(), DataTypeOf<TA>(), ldb,
                a.LoadEffectiveAddressAsPtr(), DataTypeOf<TA>(), lda,
                &beta,
                c.LoadEffectiveAddressAsPtr(), DataTypeOf<TC>(), ldc,
                CuBlas.Compute32F, CuBlas.GemmDefault);
            CuBlas.Check(status, "cublasGemmEx");
        }

        private static CuBlas.DataType DataTypeOf<T>()
            where T : unmanaged
        {
            if (typeof(T) == typeof(float))
                return CuBlas.DataType.R32F;
            if (typeof(T) == typeof(Half))
                return CuBlas.DataType.R16F;
            if (typeof(T) == typeof(BFloat16))
                return CuBlas.DataType.R16BF;
            throw new NotSupportedException(typeof(T).Name);
        }

        public void Dispose()
        {
            if (cublas != IntPtr.Zero)
            {
                CuBlas.Destroy(cublas);
                cublas = IntPtr.Zero;
            }
        }

        /// <summary>Arguments of <see cref="GemmKernel"/>.</summary>
        internal struct GemmArgs<TA, TC>
            where TA : unmanaged
            where TC : unmanaged
        {
            public ArrayView<TA> A;
            public ArrayView<TA> B;
            public ArrayView<TC> C;
            public int M;
            public int N;
            public int K;
            public int Lda;
            public int Ldb;
            public int Ldc;
            public int TransA;
            public int TransB;
            public float Alpha;
            public float Beta;
        }

        /// <summary>The fallback: one thread per element of C, a dot product over K in fp32.</summary>
        internal static void GemmKernel<TA, TAConvert, TC, TCConvert>(Index1D index, GemmArgs<TA, TC> g)
            where TA : unmanaged
            where TAConvert : struct, IElementConvert<TA>
            where TC : unmanaged
            where TCConvert : struct, IElementConvert<TC>
        {
            int i = index / g.N;
            int j = index - i * g.N;
            long aStep = g.TransA != 0 ? g.Lda : 1;
            long aIndex = g.TransA != 0 ? i : (long)i * g.Lda;
            long bStep = g.TransB != 0 ? 1 : g.Ldb;
            long bIndex = g.TransB != 0 ? (long)j * g.Ldb : j;
            float sum = 0f;
            for (int p = 0; p < g.K; p++)
            {
                sum += default(TAConvert).ToFloat(g.A[aIndex]) * default(TAConvert).ToFloat(g.B[bIndex]);
                aIndex += aStep;
                bIndex += bStep;
            }
            long cIndex = (long)i * g.Ldc + j;
            float result = g.Alpha * sum;
            if (g.Beta != 0f)
                result += g.Beta * default(TCConvert).ToFloat(g.C[cIndex]);
            g.C[cIndex] = default(TCConvert).FromFloat(result);
        }
    }

    /// <summary>
    /// The CPU GEMM: op(B) is widened once into a packed fp32 K × N panel, then blocks of four rows of C
    /// accumulate a[i,p]·B[p,:] with <see cref="Vector{T}"/> over N, in parallel over row blocks. Every element of C
    /// has a single writer and a fixed order of additions, so results do not depend on scheduling.
    /// </summary>
    internal static class ManagedGemm
    {
        private const int RowBlock = 4;

        public static unsafe void Run<TA, TC, TCConvert>(
            bool transA, bool transB, int m, int n, int k, float alpha,
            ArrayView<TA> a, int lda, ArrayView<TA> b, int ldb, float beta, ArrayView<TC> c, int ldc)
            where TA : unmanaged
            where TC : unmanaged
            where TCConvert : struct, IElementConvert<TC>
        {
            var aPtr = (TA*)a.LoadEffectiveAddressAsPtr();
            var bPtr = (TA*)b.LoadEffectiveAddressAsPtr();
            var cPtr = (TC*)c.LoadEffectiveAddressAsPtr();
            float[] packed = ArrayPool<float>.Shared.Rent(Math.Max(1, k * n));
            try
            {
                fixed (float* panel = packed)
                {
                    float* bp = panel;
                    Parallel.For(0, Blocks(k, 64), block =>
                    {
                        int end = Math.Min(k, (block + 1) * 64);
                        for (int p = block * 64; p < end; p++)
                        {
                            float* row = bp + (long)p * n;
                            for (int j = 0; j < n; j++)
                                row[j] = ElementType.ToFloat(transB ? bPtr[(long)j * ldb + p] : bPtr[(long)p * ldb + j]);
                        }
                    });

                    int blocks = Blocks(m, RowBlock);
                    int tasks = Math.Min(blocks, Environment.ProcessorCount * 4);
                    Parallel.For(0, tasks, task =>
                    {
                        var rowsA = new float[RowBlock * k];
                        var acc = new float[RowBlock * n];
                        int first = (int)((long)blocks * task / tasks), last = (int)((long)blocks * (task + 1) / tasks);
                        for (int block = first; block < last; block++)
                        {
                            int i0 = block * RowBlock;
                            int rows = Math.Min(RowBlock, m - i0);
                            for (int r = 0; r < RowBlock; r++)
                            {
                                for (int p = 0; p < k; p++)
                                {
                                    int i = i0 + Math.Min(r, rows - 1);
                                    rowsA[r * k + p] = ElementType.ToFloat(transA ? aPtr[(long)p * lda + i] : aPtr[(long)i * lda + p]);
                                }
                            }
                            Array.Clear(acc);
                            Accumulate(rowsA, bp, acc, k, n);
                            for (int r = 0; r < rows; r++)
                            {
                                TC* cRow = cPtr + (long)(i0 + r) * ldc;
                                for (int j = 0; j < n; j++)
                                {
                                    float value = alpha * acc[r * n + j];
                                    if (beta != 0f)
                                        value += beta * ElementType.ToFloat(cRow[j]);
                                    cRow[j] = default(TCConvert).FromFloat(value);
                                }
                            }
                        }
                    });
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(packed);
            }
        }

        private static int Blocks(int count, int size) => (count + size - 1) / size;

        private static unsafe void Accumulate(float[] rowsA, float* bp, float[] acc, int k, int n)
        {
            int width = Vector<float>.Count;
            int vectorEnd = n - n % width;
            fixed (float* accPtr = acc)
            {
                float* acc0 = accPtr, acc1 = accPtr + n, acc2 = accPtr + 2 * n, acc3 = accPtr + 3 * n;
                for (int p = 0; p < k; p++)
                {
                    float a0 = rowsA[p], a1 = rowsA[k + p], a2 = rowsA[2 * k + p], a3 = rowsA[3 * k + p];
                    float* bRow = bp + (long)p * n;
                    var v0 = new Vector<float>(a0);
                    var v1 = new Vector<float>(a1);
                    var v2 = new Vector<float>(a2);
                    var v3 = new Vector<float>(a3);
                    int j = 0;
                    for (; j < vectorEnd; j += width)
                    {
                        var bv = Vector.Load(bRow + j);
                        Vector.Store(Vector.Load(acc0 + j) + v0 * bv, acc0 + j);
                        Vector.Store(Vector.Load(acc1 + j) + v1 * bv, acc1 + j);
                        Vector.Store(Vector.Load(acc2 + j) + v2 * bv, acc2 + j);
                        Vector.Store(Vector.Load(acc3 + j) + v3 * bv, acc3 + j);
                    }
                    for (; j < n; j++)
                    {
                        float bv = bRow[j];
                        acc0[j] += a0 * bv;
                        acc1[j] += a1 * bv;
                        acc2[j] += a2 * bv;
                        acc3[j] += a3 * bv;
                    }
                }
            }
        }
    }
}
