using System;
using System.Collections.Generic;
using ILGPU;

namespace XFormers.Training
{
    /// <summary>One bucket: a contiguous run of whole parameters in the flat gradient buffer.</summary>
    public readonly record struct GradientBucket(long Offset, long Length, string First, string Last);

    /// <summary>
    /// Data-parallel gradient averaging in buckets, overlapped with the backward (PyTorch DDP's scheme, in llm.c's flat
    /// layout). The parameters sit in forward order in one buffer and the backward produces their gradients from the
    /// end of it to the start, so the final gradients are always a suffix [from, Count). Buckets are cut from the end:
    /// whole parameters, each bucket at least <see cref="BucketElements"/> long except the first one. The model calls
    /// <see cref="Ready"/> after each layer's backward with where that suffix starts; every bucket inside it that has not
    /// started is started then (on NCCL, on the communication stream, while the backward goes on); <see cref="Finish"/>
    /// starts the rest and makes the optimizer's work wait for all of them.
    /// </summary>
    public sealed class GradientBuckets
    {
        /// <summary>PyTorch DDP's default bucket: 25 MB of fp32.</summary>
        public const long DefaultBucketElements = 25L * 1024 * 1024 / sizeof(float);

        private readonly ICommunicator communicator;
        private readonly ArrayView<float> grads;
        private readonly GradientBucket[] buckets;
        private int started;

        public GradientBuckets(ICommunicator communicator, ArrayView<float> grads, IReadOnlyList<ParameterSlice> slices, long bucketElements = DefaultBucketElements)
        {
            ArgumentNullException.ThrowIfNull(communicator);
            ArgumentNullException.ThrowIfNull(slices);
            ArgumentOutOfRangeException.ThrowIfLessThan(bucketElements, 1);
            this.communicator = communicator;
            this.grads = grads;
            BucketElements = bucketElements;
            var cut = new List<GradientBucket>();
            int last = slices.Count - 1;
            long end = grads.Length;
            for (int i = slices.Count - 1; i >= 0; i--)
            {
                long start = slices[i].Offset;
                if (end - start >= bucketElements || i == 0)
                {
                    cut.Add(new GradientBucket(start, end - start, slices[i].Name, slices[last].Name));
                    end = start;
                    last = i - 1;
                }
            }
            buckets = cut.ToArray();
        }

        public long BucketElements { get; }

        /// <summary>The buckets in the order they are averaged: the end of the buffer first.</summary>
        public IReadOnlyList<GradientBucket> Buckets => buckets;

        /// <summary>Buckets started in this backward so far.</summary>
        public int Started => started;

        /// <summary>Starts a backward: no bucket is averaged yet.</summary>
        public void Begin() => started = 0;

        /// <summary>The gradients in [<paramref name="from"/>, end) are final: starts every bucket inside them, in order.</summary>
        public void Ready(DeviceLauncher launcher, long from)
        {
            while (started < buckets.Length && buckets[started].Offset >= from)
            {
                var bucket = buckets[started++];
                communicator.StartAverage(launcher, grads.SubView(bucket.Offset, bucket.Length));
            }
        }

        /// <summary>Starts what is left and orders the launcher's later work after every average.</summary>
        public void Finish(DeviceLauncher launcher)
        {
            Ready(launcher, 0);
            communicator.WaitAll(launcher);
        }
    }
}
