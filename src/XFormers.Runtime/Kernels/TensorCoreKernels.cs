using System;

namespace XFormers.Kernels
{
    /// <summary>
    /// The tensor-core kernels of a variant (generated from Templates/TensorCore.liquid and the kernel templates it
    /// includes) and their launch shape: groups of <paramref name="Threads"/> threads own <paramref name="ForwardBlockM"/>
    /// query rows in the forward and <paramref name="BlockM"/> query rows (dQ pass) or key rows (dK/dV pass) in the
    /// backward; the D pass's groups own <paramref name="DeltaRows"/> rows. The forward, dK/dV and dQ kernels take
    /// <paramref name="ForwardSharedBytes"/>, <paramref name="BackwardKvSharedBytes"/> and
    /// <paramref name="BackwardQSharedBytes"/> of dynamic shared memory. The backward kernels are null for variants
    /// declared with Backward = false.
    /// </summary>
    public sealed record TensorCoreKernels<T>(
        Action<AttentionArgs<T>> Forward, int ForwardBlockM, int BlockM, int Threads, int ForwardSharedBytes,
        Action<AttentionArgs<T>>? BackwardDelta = null, int DeltaRows = 0,
        Action<AttentionArgs<T>>? BackwardKv = null, int BackwardKvSharedBytes = 0,
        Action<AttentionArgs<T>>? BackwardQ = null, int BackwardQSharedBytes = 0)
        where T : unmanaged
    {
        /// <summary>Groups per row tile of the forward, each writing one slice of O's columns (large head dims; 1: the whole row).</summary>
        public int ForwardSlices { get; init; } = 1;

        /// <summary>Groups per key tile of the dK/dV pass, each writing one slice of dK's and dV's columns.</summary>
        public int BackwardKvSlices { get; init; } = 1;

        /// <summary>Groups per row tile of the dQ pass, each writing one slice of dQ's columns.</summary>
        public int BackwardQSlices { get; init; } = 1;

        /// <summary>
        /// Groups the dQ kernel is compiled to hold on a multiprocessor at once (ptxas's <c>.minnctapersm</c>, with
        /// <c>.maxntid</c> <see cref="Threads"/>), which bounds its registers; 0 leaves the allocation to ptxas.
        /// </summary>
        public int BackwardQGroupsPerMultiprocessor { get; init; }
    }

    /// <summary>When <see cref="AttentionKernel{T}"/> runs a variant's tensor-core kernels instead of its SIMT ones.</summary>
    public enum TensorCorePolicy
    {
        /// <summary>On CUDA accelerators (<c>XFORMERS_TENSOR_CORES=0</c> turns them off).</summary>
        Auto = 0,

        /// <summary>Never: the SIMT kernels everywhere.</summary>
        Never = 1,

        /// <summary>Also on ILGPU's CPU accelerator when its warps have 32 lanes (the helpers' scalar twins; for tests).</summary>
        Always = 2,
    }
}
