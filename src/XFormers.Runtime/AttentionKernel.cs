using System;
using System.Collections.Generic;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>
    /// The handle a declared attention variant returns: its constants and its generated kernels. Call
    /// <see cref="Forward{T}"/> and <see cref="Backward{T}"/> to run this exact variant, or go through
    /// <see cref="Fmha"/>, which picks a registered variant for the inputs.
    /// </summary>
    public abstract class AttentionKernel
    {
        private protected AttentionKernel(AttentionVariant variant) =>
            Variant = variant ?? throw new ArgumentNullException(nameof(variant));

        /// <summary>The variant's compile-time constants.</summary>
        public AttentionVariant Variant { get; }

        /// <summary>The generated <c>BindMods</c> (a <see cref="ModBinder{TArgs}"/>) of a variant whose mods take arguments, else null.</summary>
        private protected Delegate? ModBinder { get; init; }

        /// <summary>The mods' run-time arguments bound by <see cref="WithArguments{TArgs}"/>, else null.</summary>
        public ModBinding? Arguments { get; private set; }

        /// <summary>
        /// This variant with its mods' run-time arguments bound: the kernel to pass to <see cref="Forward{T}"/>, <see cref="Backward{T}"/>
        /// or <see cref="Fmha"/>. Scalars are copied now; tables are read at each launch (and checked then: alive, on the inputs'
        /// context, of the rank the mods index them with). The original stays unbound.
        /// </summary>
        public AttentionKernel WithArguments<TArgs>(in TArgs args)
            where TArgs : struct
        {
            if (Variant.ModArgsType is null || ModBinder is null)
                throw new InvalidOperationException($"Variant {Variant.Name} has no mod that takes run-time arguments.");
            if (ModBinder is not ModBinder<TArgs> binder)
                throw new ArgumentException($"args: the mods of variant {Variant.Name} take {Variant.ModArgsType.FullName}, not {typeof(TArgs).FullName}.", nameof(args));
            var bound = (AttentionKernel)MemberwiseClone();
            bound.Arguments = binder(args);
            return bound;
        }

        /// <summary>
        /// The mods' arguments as the kernels read them, checked (the arguments are bound when the mods take any; each table is
        /// alive and on <paramref name="context"/>). Throws naming the argument, before any launch.
        /// </summary>
        internal ModArgs ModArguments(XFormersContext context)
        {
            if (Variant.ModArgsType is null)
                return default;
            if (Arguments is null)
                throw new ArgumentException(
                    $"kernel: the mods of variant {Variant.Name} read {Variant.ModArgsType.Name}; pass kernel.WithArguments(new {Variant.ModArgsType.Name} {{ … }}).", "kernel");
            return Arguments.ToKernelArgs(context);
        }

        /// <summary>The element type of the tensors this variant takes.</summary>
        public abstract Type ElementType { get; }

        /// <summary>The assembly that declared the variant (its generated kernels live there).</summary>
        public abstract System.Reflection.Assembly DeclaringAssembly { get; }

        /// <summary>Compiles every kernel this variant would launch on <paramref name="accelerator"/> now instead of on first use.</summary>
        public void Prepare(Accelerator accelerator) => Prepare(accelerator, includeBackward: true);

        /// <summary>
        /// Compiles, now, the forward kernel this variant would launch on <paramref name="accelerator"/>, and with
        /// <paramref name="includeBackward"/> its backward kernels (each compiles once per accelerator, else on first use).
        /// </summary>
        public abstract void Prepare(Accelerator accelerator, bool includeBackward);

        /// <summary>How many of the kernels <see cref="Prepare(Accelerator, bool)"/> would compile are not compiled yet (for progress reports).</summary>
        public abstract int UncompiledKernels(Accelerator accelerator, bool includeBackward);

        /// <summary>Which kernels the forward and backward take on <paramref name="accelerator"/>, in words (for <c>info</c>).</summary>
        public abstract string BackendOn(Accelerator accelerator);

        /// <summary>Whether this variant can run on the given context's accelerator.</summary>
        public virtual bool CanRunOn(XFormersContext context) =>
            context.Accelerator.MaxNumThreadsPerGroup >= Math.Max(Variant.BlockM, Variant.BlockN)
            && context.Accelerator.MaxSharedMemoryPerGroup >= Variant.ForwardSharedBytes;

        /// <summary>
        /// Forward with this variant: the output, and the log-sum-exp the backward needs. <paramref name="p"/> &gt; 0 applies
        /// attention dropout under <paramref name="seed"/> (a variant declared with <c>Dropout = true</c>).
        /// </summary>
        public AttentionOutput<T> Forward<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias = null, float? scale = null, double p = 0.0, ulong? seed = null)
            where T : unmanaged =>
            Fmha.MemoryEfficientAttentionForward(query, key, value, attnBias, scale, this, p, seed);

        /// <summary>Backward with this variant: dQ, dK, dV (and dBias for a bias that requires it); p and seed are the forward's.</summary>
        public AttentionGradients<T> Backward<T>(
            Tensor<T> gradOutput, AttentionOutput<T> forward, Tensor<T> query, Tensor<T> key, Tensor<T> value,
            AttentionBias? attnBias = null, float? scale = null, double p = 0.0, ulong? seed = null)
            where T : unmanaged =>
            Fmha.MemoryEfficientAttentionBackward(gradOutput, forward, query, key, value, attnBias, scale, this, p, seed);

        public override string ToString() => Variant.ToString();

        /// <summary>
        /// For the GPU harness's per-kernel breakdown: called after each launch with the kernel's name (forward, delta,
        /// dK/dV, dQ); the harness synchronizes there and reads its clock. Null (nothing is called) everywhere else.
        /// </summary>
        internal static Action<string>? LaunchObserver { get; set; }

        /// <summary>
        /// Where tensor-core kernels run (default: on CUDA; <c>XFORMERS_TENSOR_CORES=0</c> turns them off); for
        /// comparisons and for tests of the tensor-core kernels on a 32-lane CPU accelerator.
        /// </summary>
        public static TensorCorePolicy TensorCores { get; set; } =
            Environment.GetEnvironmentVariable("XFORMERS_TENSOR_CORES") == "0" ? TensorCorePolicy.Never : TensorCorePolicy.Auto;
    }

    /// <summary>A variant's kernels for element type <typeparamref name="T"/>; created by generated code.</summary>
    public sealed class AttentionKernel<T> : AttentionKernel
        where T : unmanaged
    {
        private readonly Action<AttentionArgs<T>> forward;
        private readonly Action<AttentionArgs<T>>? backwardDelta;
        private readonly Action<AttentionArgs<T>>? backwardKv;
        private readonly Action<AttentionArgs<T>>? backwardQ;
        private readonly TensorCoreKernels<T>? tensorCore;
        private readonly Hopper.HopperForwardModule? hopperForward;
        private readonly Hopper.HopperBackwardModule? hopperBackward;
        private readonly Action<AttentionArgs<T>>? blockClasses;
        /// <summary>Compiles one of this variant's kernels with <see cref="Specialization"/> (one delegate: no allocation per launch).</summary>
        private readonly Func<Accelerator, Action<AttentionArgs<T>>, Action<KernelConfig, AttentionArgs<T>>> load;

        /// <summary>Wraps the generated kernel methods (the backward ones are null when Backward = false).</summary>
        public AttentionKernel(
            AttentionVariant variant,
            Action<AttentionArgs<T>> forward,
            Action<AttentionArgs<T>>? backwardDelta = null,
            Action<AttentionArgs<T>>? backwardKv = null,
            Action<AttentionArgs<T>>? backwardQ = null,
            TensorCoreKernels<T>? tensorCore = null,
            Hopper.HopperForwardModule? hopperForward = null,
            Hopper.HopperBackwardModule? hopperBackward = null,
            Delegate? modBinder = null,
            Action<AttentionArgs<T>>? blockClasses = null)
            : base(variant)
        {
            if ((variant.ModArgsType is null) != (modBinder is null))
                throw new ArgumentException($"Variant {variant.Name}: a mod binder is given exactly when the mods take arguments.", nameof(modBinder));
            if ((variant.MaskMod is null) != (blockClasses is null))
                throw new ArgumentException($"Variant {variant.Name}: the block classifier is given exactly when there is a mask mod.", nameof(blockClasses));
            ModBinder = modBinder;
            this.blockClasses = blockClasses;
            if (XFormers.ElementType.Of<T>() != variant.DType)
                throw new ArgumentException($"Variant {variant.Name} is {variant.DType} but its kernels take {typeof(T).Name}.", nameof(variant));
            this.forward = forward ?? throw new ArgumentNullException(nameof(forward));
            this.backwardDelta = backwardDelta;
            this.backwardKv = backwardKv;
            this.backwardQ = backwardQ;
            this.tensorCore = tensorCore;
            this.hopperForward = hopperForward;
            this.hopperBackward = hopperBackward;
            load = (accelerator, kernel) => accelerator.LoadStreamKernel(kernel, Specialization(kernel));
        }

        /// <summary>The forward as an sm_90a PTX module (fp16/bf16 variants with HeadDim a multiple of 64 up to 256), else null.</summary>
        public Hopper.HopperForwardModule? HopperForward => hopperForward;

        /// <summary>Whether the next forward on <paramref name="accelerator"/> may run the sm_90a module (compute capability 9.0).</summary>
        public bool UsesHopperForward(Accelerator accelerator) =>
            hopperForward is not null && Hopper.HopperLauncher.IsAvailable(accelerator);

        /// <summary>The backward's dK/dV and dQ passes as an sm_90a PTX module (fp16/bf16, HeadDim a multiple of 64 up to 256), else null.</summary>
        public Hopper.HopperBackwardModule? HopperBackward => hopperBackward;

        /// <summary>Whether the next backward on <paramref name="accelerator"/> may run the sm_90a module (compute capability 9.0).</summary>
        public bool UsesHopperBackward(Accelerator accelerator) =>
            hopperBackward is not null && Hopper.HopperLauncher.IsAvailable(accelerator);

        /// <summary>Which kernels the forward and backward take on <paramref name="accelerator"/>, in words (for <c>info</c>).</summary>
        public override string BackendOn(Accelerator accelerator)
        {
            string backward = !Variant.Backward ? "no backward"
                : UsesHopperBackward(accelerator) ? "backward: sm_90a PTX (wgmma, TMA, deterministic)"
                : UsesTensorCoreBackward(accelerator) ? "backward: ILGPU mma.sync" : "backward: ILGPU SIMT";
            string forward = UsesHopperForward(accelerator) ? "forward: sm_90a PTX (wgmma, TMA)"
                : UsesTensorCores(accelerator) ? "forward: ILGPU mma.sync" : "forward: ILGPU SIMT";
            return forward + "; " + backward;
        }

        /// <summary>
        /// Query rows one group of the forward owns on <paramref name="accelerator"/> (a multiple of every plan's for the
        /// sm_90a module): pieces of a packed layout that start on multiples of it never share a group.
        /// </summary>
        internal int ForwardRowsPerGroup(Accelerator accelerator)
        {
            if (UsesHopperForward(accelerator))
            {
                int rows = hopperForward!.BlockM;
                for (var plan = hopperForward.SmallGrid; plan is not null; plan = plan.SmallGrid)
                {
                    int a = rows, b = plan.BlockM;
                    while (b != 0)
                        (a, b) = (b, a % b);
                    rows = rows / a * plan.BlockM;
                }
                return rows;
            }
            return UsesTensorCores(accelerator) ? tensorCore!.ForwardBlockM : Variant.BlockM;
        }

        /// <summary>Whether this variant has tensor-core kernels (fp16/bf16).</summary>
        public bool HasTensorCoreKernels => tensorCore is not null;

        /// <summary>Whether the next launch on <paramref name="accelerator"/> runs the tensor-core kernels.</summary>
        public bool UsesTensorCores(Accelerator accelerator) =>
            tensorCore is not null && TensorCores switch
            {
                TensorCorePolicy.Auto => accelerator.AcceleratorType == AcceleratorType.Cuda,
                TensorCorePolicy.Always => accelerator.AcceleratorType == AcceleratorType.Cuda || accelerator.WarpSize == 32,
                _ => false,
            };

        /// <summary>Whether the next backward on <paramref name="accelerator"/> runs the tensor-core dK/dV and dQ passes.</summary>
        public bool UsesTensorCoreBackward(Accelerator accelerator) =>
            UsesTensorCores(accelerator) && tensorCore is { BackwardDelta: not null, BackwardKv: not null, BackwardQ: not null };

        public override Type ElementType => typeof(T);

        public override System.Reflection.Assembly DeclaringAssembly => forward.Method.Module.Assembly;

        /// <summary>The kernel methods by name, with what they are compiled with, for tools that compile them on their own (PTX listings).</summary>
        internal IEnumerable<(string Name, System.Reflection.MethodInfo Method, KernelSpecialization Specialization)> KernelMethods()
        {
            var kernels = new (string, Action<AttentionArgs<T>>?)[]
            {
                (nameof(forward), forward),
                ("tensorCoreForward", tensorCore?.Forward),
                ("tensorCoreBackwardDelta", tensorCore?.BackwardDelta),
                ("tensorCoreBackwardKv", tensorCore?.BackwardKv),
                ("tensorCoreBackwardQ", tensorCore?.BackwardQ),
                (nameof(backwardDelta), backwardDelta),
                (nameof(backwardKv), backwardKv),
                (nameof(backwardQ), backwardQ),
            };
            foreach (var (name, kernel) in kernels)
            {
                if (kernel is not null)
                    yield return (name, kernel.Method, Specialization(kernel));
            }
        }

        internal void LaunchForward(Accelerator accelerator, in AttentionArgs<T> args)
        {
            if (hopperForward is not null && HopperForwardArgs(accelerator, args) is { } hopperArgs
                && Hopper.HopperLauncher.TryLaunchForward(accelerator, hopperForward, Variant.DType, hopperArgs, Variant.HasMods, Variant.Mask.IsLocal()))
            {
                LaunchObserver?.Invoke("forward");
                return;
            }
            if (UsesTensorCores(accelerator))
            {
                var tc = tensorCore!;
                Launcher(accelerator, tc.Forward)(
                    new KernelConfig(new Index3D(DivUp(args.Mq, tc.ForwardBlockM) * tc.ForwardSlices, args.Hq, args.Batch), new Index3D(tc.Threads, 1, 1), Dynamic(tc.ForwardSharedBytes)),
                    args);
            }
            else
            {
                int tiles = DivUp(args.Mq, Variant.BlockM);
                Launcher(accelerator, forward)(
                    new KernelConfig(new Index3D(tiles, args.Hq, args.Batch), new Index3D(Variant.BlockM, 1, 1)),
                    WithBlocks(accelerator, args, Variant.BlockM, Variant.BlockN));
            }
            LaunchObserver?.Invoke("forward");
        }

        internal void LaunchBackward(Accelerator accelerator, in AttentionArgs<T> args)
        {
            if (backwardDelta is null || backwardKv is null || backwardQ is null)
                throw new InvalidOperationException($"Variant {Variant.Name} was declared with Backward = false.");
            if (hopperBackward is not null && Hopper.HopperLauncher.IsAvailable(accelerator) && Hopper.HopperLauncher.CanLaunchBackward(args))
            {
                LaunchDelta(accelerator, args);
                BlockMasks.ListLayout keysList = default, queriesList = default;
                if (blockClasses is not null)
                {
                    // The mask mod's tiles as each pass walks them: by key tile for dK/dV, by query tile for dQ.
                    var classifier = Launcher(accelerator, blockClasses);
                    keysList = BlockMasks.Columns(accelerator, Variant, Arguments, classifier, args, hopperBackward.QueryTileRows, hopperBackward.KeyRows);
                    queriesList = BlockMasks.Rows(accelerator, Variant, Arguments, classifier, args, hopperBackward.QueryRows, hopperBackward.KeyTileRows);
                }
                Hopper.HopperLauncher.LaunchBackward(
                    accelerator, hopperBackward, Variant.DType, args, Variant.Mask.IsLocal(), LaunchObserver, Variant.HasMods, keysList, queriesList);
                return;
            }
            if (UsesTensorCoreBackward(accelerator) && tensorCore is { BackwardKv: { } tcKv, BackwardQ: { } tcQ } tc)
            {
                var threads = new Index3D(tc.Threads, 1, 1);
                LaunchDelta(accelerator, args);
                Launcher(accelerator, tcKv)(
                    new KernelConfig(new Index3D(DivUp(args.Mkv, tc.BlockM) * tc.BackwardKvSlices, args.Hkv, args.Batch), threads, Dynamic(tc.BackwardKvSharedBytes)),
                    args);
                LaunchObserver?.Invoke("dK/dV");
                Launcher(accelerator, tcQ)(
                    new KernelConfig(new Index3D(DivUp(args.Mq, tc.BlockM) * tc.BackwardQSlices, args.Hq, args.Batch), threads, Dynamic(tc.BackwardQSharedBytes)),
                    args);
                LaunchObserver?.Invoke("dQ");
                return;
            }
            LaunchDelta(accelerator, args);
            int kvTiles = DivUp(args.Mkv, Variant.BlockN);
            if (kvTiles > 0)
            {
                Launcher(accelerator, backwardKv)(
                    new KernelConfig(new Index3D(kvTiles, args.Hkv, args.Batch), new Index3D(Variant.BlockN, 1, 1)),
                    WithBlocks(accelerator, args, Variant.BackwardBlockM, Variant.BlockN));
            }
            LaunchObserver?.Invoke("dK/dV");
            Launcher(accelerator, backwardQ)(
                new KernelConfig(new Index3D(DivUp(args.Mq, Variant.BlockM), args.Hq, args.Batch), new Index3D(Variant.BlockM, 1, 1)),
                WithBlocks(accelerator, args, Variant.BlockM, Variant.BlockN));
            LaunchObserver?.Invoke("dQ");
        }

        /// <summary>
        /// The sm_90a forward's arguments where it can run them (with its block list for a mask mod, whose tiles are the
        /// module's), else null.
        /// </summary>
        private AttentionArgs<T>? HopperForwardArgs(Accelerator accelerator, in AttentionArgs<T> args)
        {
            if (!Hopper.HopperLauncher.IsAvailable(accelerator) || !Hopper.HopperLauncher.CanLaunchForward(args))
                return null;
            var result = args;
            if (blockClasses is not null)
            {
                // The block list is by the tiles of the module the launcher will pick for this grid.
                var module = Hopper.HopperLauncher.Pick(hopperForward!, args.Mq, args.Hq * args.Batch, accelerator.NumMultiprocessors);
                BlockMasks.Attach(accelerator, Variant, Arguments, Launcher(accelerator, blockClasses), ref result, module.BlockM, module.BlockN, list: true);
            }
            return result;
        }

        /// <summary>
        /// <paramref name="args"/> with the block mask of a variant with a mask mod for tiles of <paramref name="rows"/> query rows
        /// by <paramref name="cols"/> keys (cached per accelerator, shape and arguments: <see cref="BlockMasks"/>); unchanged otherwise.
        /// </summary>
        private AttentionArgs<T> WithBlocks(Accelerator accelerator, in AttentionArgs<T> args, int rows, int cols)
        {
            var result = args;
            if (blockClasses is not null)
                BlockMasks.Attach(accelerator, Variant, Arguments, Launcher(accelerator, blockClasses), ref result, rows, cols);
            return result;
        }

        /// <summary>
        /// Delta = rowsum(dO ∘ O), the backward's first pass on every path (the sm_90a module leaves it to the ILGPU kernels):
        /// the tensor-core kernel where the tensor-core kernels run, else the portable one.
        /// </summary>
        private void LaunchDelta(Accelerator accelerator, in AttentionArgs<T> args)
        {
            if (UsesTensorCores(accelerator) && tensorCore is { BackwardDelta: { } tcDelta } tc)
                Launcher(accelerator, tcDelta)(new KernelConfig(new Index3D(DivUp(args.Mq, tc.DeltaRows), args.Hq, args.Batch), new Index3D(tc.Threads, 1, 1)), args);
            else
                Launcher(accelerator, backwardDelta!)(new KernelConfig(new Index3D(DivUp(args.Mq, Variant.BlockM), args.Hq, args.Batch), new Index3D(Variant.BlockM, 1, 1)), args);
            LaunchObserver?.Invoke("delta");
        }

        public override void Prepare(Accelerator accelerator, bool includeBackward)
        {
            ArgumentNullException.ThrowIfNull(accelerator);
            if (hopperForward is not null)
                Hopper.HopperLauncher.Prepare(accelerator, hopperForward);
            if (includeBackward && hopperBackward is not null)
                Hopper.HopperLauncher.Prepare(accelerator, hopperBackward);
            foreach (var kernel in KernelsFor(accelerator, includeBackward))
                Launcher(accelerator, kernel);
        }

        public override int UncompiledKernels(Accelerator accelerator, bool includeBackward)
        {
            ArgumentNullException.ThrowIfNull(accelerator);
            int count = 0;
            foreach (var kernel in KernelsFor(accelerator, includeBackward))
            {
                if (!KernelCache.Contains(accelerator, kernel))
                    count++;
            }
            return count;
        }

        /// <summary>The kernel methods a launch on <paramref name="accelerator"/> would use.</summary>
        private IEnumerable<Action<AttentionArgs<T>>> KernelsFor(Accelerator accelerator, bool includeBackward)
        {
            if (blockClasses is not null)
                yield return blockClasses;
            // The sm_90a module is compiled by HopperLauncher.Prepare; the ILGPU forward then stays a fallback compiled on first use.
            if (!UsesHopperForward(accelerator))
                yield return UsesTensorCores(accelerator) ? tensorCore!.Forward : forward;
            if (!includeBackward)
                yield break;
            if (UsesHopperBackward(accelerator))
            {
                // The sm_90a module runs dK/dV and dQ; Delta stays an ILGPU kernel.
                yield return UsesTensorCores(accelerator) && tensorCore?.BackwardDelta is { } delta ? delta : backwardDelta!;
            }
            else if (UsesTensorCoreBackward(accelerator))
            {
                yield return tensorCore!.BackwardDelta!;
                yield return tensorCore.BackwardKv!;
                yield return tensorCore.BackwardQ!;
            }
            else if (backwardDelta is not null && backwardKv is not null && backwardQ is not null)
            {
                yield return backwardDelta;
                yield return backwardKv;
                yield return backwardQ;
            }
        }

        /// <summary>A tensor-core kernel's dynamic shared memory (its tiles; the kernels view it as 8-byte words).</summary>
        private static SharedMemoryConfig Dynamic(int bytes) => SharedMemoryConfig.RequestDynamic<ulong>(bytes / sizeof(ulong));

        /// <summary>Compiles a kernel (once per accelerator, on first use; <see cref="KernelCache"/>) and returns its launcher.</summary>
        private Action<KernelConfig, AttentionArgs<T>> Launcher(Accelerator accelerator, Action<AttentionArgs<T>> kernel) =>
            KernelCache.GetOrAdd(accelerator, kernel, load);

        /// <summary>
        /// What <paramref name="kernel"/> is compiled with: the dQ tensor-core kernel's occupancy bound
        /// (<see cref="TensorCoreKernels{T}.BackwardQGroupsPerMultiprocessor"/>), nothing for the others.
        /// </summary>
        private KernelSpecialization Specialization(Action<AttentionArgs<T>> kernel) =>
            tensorCore is { BackwardQGroupsPerMultiprocessor: > 0 } tc && kernel == tc.BackwardQ
                ? new KernelSpecialization(tc.Threads, tc.BackwardQGroupsPerMultiprocessor)
                : KernelSpecialization.Empty;

        private static int DivUp(int a, int b) => (a + b - 1) / b;
    }
}
