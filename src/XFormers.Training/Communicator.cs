using System;
using System.Threading;
using ILGPU;
using ILGPU.Runtime;

namespace XFormers.Training
{
    /// <summary>
    /// The collective a data-parallel step needs: averaging fp32 buffers over the ranks. <see cref="StartAverage"/> is
    /// ordered after the work queued so far on the launcher's stream and returns at once (NCCL runs it on a stream of its
    /// own, so the backward goes on meanwhile); <see cref="WaitAll"/> orders later work after every average started.
    /// Every rank must start the same buffers in the same order.
    /// </summary>
    public interface ICommunicator : IDisposable
    {
        int Rank { get; }

        int WorldSize { get; }

        /// <summary>Starts replacing <paramref name="data"/> by its mean over the ranks, after the work queued on <paramref name="launcher"/>.</summary>
        void StartAverage(DeviceLauncher launcher, ArrayView<float> data);

        /// <summary>Work queued on <paramref name="launcher"/> after this call sees every started average done.</summary>
        void WaitAll(DeviceLauncher launcher);
    }

    /// <summary>One rank: averaging is the identity, so the data-parallel code path costs nothing.</summary>
    public sealed class SingleRankCommunicator : ICommunicator
    {
        public int Rank => 0;

        public int WorldSize => 1;

        public void StartAverage(DeviceLauncher launcher, ArrayView<float> data)
        {
        }

        public void WaitAll(DeviceLauncher launcher)
        {
        }

        public void Dispose()
        {
        }
    }

    /// <summary>
    /// Ranks simulated by threads of one process (tests; CPU contexts): each rank's <see cref="ICommunicator.StartAverage"/> copies its
    /// buffer to the host, meets the others at a barrier, and every rank adds the copies in rank order, so all ranks get
    /// bit-identical means, as NCCL's deterministic ring gives. Synchronous: the average is done when the call returns.
    /// </summary>
    public sealed class InProcessGroup
    {
        private readonly Barrier barrier;
        private readonly float[][] staging;

        private InProcessGroup(int worldSize)
        {
            barrier = new Barrier(worldSize);
            staging = new float[worldSize][];
        }

        /// <summary>How long a rank waits for the others before it gives up (a rank that failed never arrives).</summary>
        public static TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(5);

        private void Meet()
        {
            if (!barrier.SignalAndWait(Timeout))
                throw new TimeoutException($"the other ranks did not reach the average within {Timeout}.");
        }

        /// <summary>One communicator per rank, to be used from one thread each.</summary>
        public static ICommunicator[] Create(int worldSize)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
            var group = new InProcessGroup(worldSize);
            var ranks = new ICommunicator[worldSize];
            for (int r = 0; r < worldSize; r++)
                ranks[r] = new Rank(group, r);
            return ranks;
        }

        private sealed class Rank(InProcessGroup group, int rank) : ICommunicator
        {
            int ICommunicator.Rank => rank;

            public int WorldSize => group.staging.Length;

            public void StartAverage(DeviceLauncher launcher, ArrayView<float> data)
            {
                ArgumentNullException.ThrowIfNull(launcher);
                launcher.Synchronize();
                var mine = new float[data.Length];
                data.CopyToCPU(mine);
                group.staging[rank] = mine;
                group.Meet();
                var mean = new float[mine.Length];
                for (int i = 0; i < mean.Length; i++)
                {
                    float sum = 0f;
                    for (int r = 0; r < group.staging.Length; r++)
                        sum += group.staging[r][i];
                    mean[i] = sum / group.staging.Length;
                }
                // Nobody may overwrite its staging slot (the next average) before every rank has read this one.
                group.Meet();
                data.CopyFromCPU(mean);
            }

            public void WaitAll(DeviceLauncher launcher)
            {
            }

            public void Dispose()
            {
            }
        }
    }
}
