using System;
using System.Reflection;
using System.Runtime.CompilerServices;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace XFormers.Training
{
    /// <summary>
    /// Runs an <see cref="XFormersContext"/> on its device's <b>primary</b> CUDA context, the one the CUDA runtime, cuBLAS
    /// and NCCL use, so that ILGPU's buffers and modules, cuBLAS's handle and NCCL's communicator share one context.
    /// </summary>
    /// <remarks>
    /// ILGPU 1.5.3 creates a context of its own (<c>cuCtxCreate</c>) and has no option to take the primary one. NCCL's
    /// <c>ncclCommInitRank</c> calls <c>cudaSetDevice</c> on the caller's thread, which makes the primary context current
    /// (creating it); from then on cuBLAS, NCCL's streams and every ILGPU allocation follow whichever context is current,
    /// while the sm_90a launcher sets ILGPU's own again: work of one context touching memory or handles of the other. So
    /// <see cref="Create"/> takes the primary context (<c>cuDevicePrimaryCtxRetain</c>) right after ILGPU made its
    /// accelerator, before anything is allocated, loaded or queued there, gives its handle to the accelerator (ILGPU's
    /// <c>Accelerator.NativePtr</c>, whose setter is protected, through reflection), and destroys ILGPU's context.
    /// ILGPU's constructor leaves nothing else in its context: its default stream is the null stream, the cache and
    /// shared-memory configurations are read, not set, and the PTX backend holds no driver object. ILGPU destroys the
    /// accelerator's context when disposed, and a primary context is released, not destroyed: when the accelerator is
    /// disposed, after ILGPU frees the buffers (with the primary context current) it destroys a placeholder context made
    /// for it, and the primary context is released once the <see cref="XFormersContext"/> is gone.
    /// </remarks>
    public static class PrimaryCudaContext
    {
        private static readonly ConditionalWeakTable<Accelerator, Adoption> Adopted = new();

        /// <summary>
        /// <see cref="XFormersContext.Create"/>, then, on CUDA, the switch to the device's primary context. A CPU context
        /// comes back as created.
        /// </summary>
        public static XFormersContext Create(AcceleratorPreference preference = AcceleratorPreference.Auto)
        {
            var context = XFormersContext.Create(preference);
            if (!context.IsCuda)
                return context;
            try
            {
                Adopt(context, DriverContexts.Instance);
            }
            catch
            {
                context.Dispose();
                throw;
            }
            CudaContextTrace.Log("XFormersContext on the primary context", context.Accelerator);
            return context;
        }

        /// <summary>Whether <paramref name="accelerator"/> runs on its device's primary context (made by <see cref="Create"/>).</summary>
        public static bool IsPrimary(Accelerator accelerator)
        {
            ArgumentNullException.ThrowIfNull(accelerator);
            return Adopted.TryGetValue(accelerator, out _);
        }

        /// <summary>
        /// Moves a fresh context's accelerator onto the primary context of its device, through <paramref name="driver"/>
        /// (the CUDA driver, or a fake in tests). Must come before anything is allocated through the context.
        /// </summary>
        internal static void Adopt(XFormersContext context, IContextDriver driver)
        {
            var accelerator = context.Accelerator;
            if (Adopted.TryGetValue(accelerator, out _))
                throw new InvalidOperationException("this accelerator already runs on the primary context.");
            if (context.LiveBytes != 0)
                throw new InvalidOperationException($"the primary context must be taken before anything is allocated; {context.LiveBytes} bytes are held in ILGPU's own.");
            IntPtr own = accelerator.NativePtr;
            int device = driver.DeviceOf(own);
            // Retain first: should it fail, ILGPU's context is still whole and the XFormersContext still usable.
            IntPtr primary = driver.RetainPrimary(device);
            SetNativePtr(accelerator, primary);
            driver.SetCurrent(primary);
            driver.Destroy(own);
            var adoption = new Adoption(driver, device, primary);
            Adopted.Add(accelerator, adoption);
            accelerator.Disposed += adoption.OnAcceleratorDisposing;
            context.Disposed += adoption.OnContextDisposed;
        }

        /// <summary>ILGPU's <c>Accelerator.NativePtr</c> setter (protected): the context handle every <c>Bind()</c> makes current.</summary>
        internal static void SetNativePtr(Accelerator accelerator, IntPtr value) => NativePtrSetter.Value(accelerator, value);

        private static readonly Lazy<Action<Accelerator, IntPtr>> NativePtrSetter = new(() =>
        {
            var setter = typeof(Accelerator).GetProperty(nameof(Accelerator.NativePtr), BindingFlags.Instance | BindingFlags.Public)?.GetSetMethod(nonPublic: true)
                ?? throw new MissingMethodException($"ILGPU {typeof(Accelerator).Assembly.GetName().Version} has no NativePtr setter on Accelerator; the primary-context switch needs one.");
            return setter.CreateDelegate<Action<Accelerator, IntPtr>>();
        });

        /// <summary>The driver calls the switch makes; <see cref="DriverContexts"/> is the real one.</summary>
        internal interface IContextDriver
        {
            /// <summary>The device of <paramref name="context"/> (made current for the query).</summary>
            int DeviceOf(IntPtr context);

            IntPtr RetainPrimary(int device);

            void ReleasePrimary(int device);

            void SetCurrent(IntPtr context);

            void Destroy(IntPtr context);

            /// <summary>A new context on <paramref name="device"/> that is not left current (created, then popped).</summary>
            IntPtr CreateUnbound(int device);
        }

        private sealed class DriverContexts : IContextDriver
        {
            public static readonly DriverContexts Instance = new();

            public int DeviceOf(IntPtr context)
            {
                CudaDriver.Check(CudaDriver.CtxSetCurrent(context), "cuCtxSetCurrent");
                CudaDriver.Check(CudaDriver.CtxGetDevice(out int device), "cuCtxGetDevice");
                return device;
            }

            public IntPtr RetainPrimary(int device)
            {
                CudaDriver.Check(CudaDriver.DevicePrimaryCtxRetain(out var primary, device), "cuDevicePrimaryCtxRetain");
                return primary;
            }

            public void ReleasePrimary(int device) => CudaDriver.Check(CudaDriver.DevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease");

            public void SetCurrent(IntPtr context) => CudaDriver.Check(CudaDriver.CtxSetCurrent(context), "cuCtxSetCurrent");

            public void Destroy(IntPtr context) => CudaDriver.Check(CudaDriver.CtxDestroy(context), "cuCtxDestroy");

            public IntPtr CreateUnbound(int device)
            {
                CudaDriver.Check(CudaDriver.CtxCreate(out var context, 0, device), "cuCtxCreate");
                CudaDriver.Check(CudaDriver.CtxPopCurrent(out _), "cuCtxPopCurrent");
                return context;
            }
        }

        /// <summary>One accelerator on the primary context, and what its disposal must undo.</summary>
        private sealed class Adoption(IContextDriver driver, int device, IntPtr primary)
        {
            /// <summary>
            /// ILGPU's Accelerator.Disposed, raised on the disposing thread before ILGPU binds the accelerator, frees its
            /// buffers and kernels, and destroys its context: the primary context is made current (and ILGPU's note of the
            /// bound accelerator made true, so its own Bind() changes nothing), and the handle ILGPU will destroy becomes a
            /// placeholder context of the same device.
            /// </summary>
            public void OnAcceleratorDisposing(object? sender, EventArgs e)
            {
                var accelerator = (Accelerator)sender!;
                accelerator.Bind();
                driver.SetCurrent(primary);
                SetNativePtr(accelerator, driver.CreateUnbound(device));
            }

            /// <summary>XFormersContext.Disposed: ILGPU is done with the primary context; release it.</summary>
            public void OnContextDisposed(object? sender, EventArgs e) => driver.ReleasePrimary(device);
        }
    }
}
