using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;

namespace XFormers.Training
{
    /// <summary>
    /// What a data-parallel rank reads from its environment, torchrun's names: <c>RANK</c>, <c>WORLD_SIZE</c>,
    /// <c>LOCAL_RANK</c>, and <c>XFORMERS_NCCL_ID</c>, the hex ncclUniqueId every rank of the job shares.
    /// </summary>
    public sealed record RankEnvironment(int Rank, int WorldSize, int LocalRank, string NcclId)
    {
        public const string RankVariable = "RANK";
        public const string WorldSizeVariable = "WORLD_SIZE";
        public const string LocalRankVariable = "LOCAL_RANK";
        public const string NcclIdVariable = "XFORMERS_NCCL_ID";

        /// <summary>This process's rank, or null when it was not started as one (no <c>WORLD_SIZE</c>).</summary>
        public static RankEnvironment? FromEnvironment() => From(Environment.GetEnvironmentVariable);

        /// <summary>The same from any variable lookup; throws naming the variable that is missing or out of range.</summary>
        public static RankEnvironment? From(Func<string, string?> variable)
        {
            ArgumentNullException.ThrowIfNull(variable);
            string? world = variable(WorldSizeVariable);
            if (string.IsNullOrEmpty(world))
                return null;
            int Read(string name, int min, int max)
            {
                string? text = variable(name);
                if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
                    throw new ArgumentException($"{name}={text ?? "(unset)"}: expected an integer from {min} to {max}.");
                return value;
            }
            int size = Read(WorldSizeVariable, 1, 1 << 16);
            int rank = Read(RankVariable, 0, size - 1);
            int local = string.IsNullOrEmpty(variable(LocalRankVariable)) ? rank : Read(LocalRankVariable, 0, size - 1);
            string id = variable(NcclIdVariable) ?? "";
            if (size > 1 && id.Length == 0)
                throw new ArgumentException($"{NcclIdVariable} is unset; the launcher hands every rank the same NCCL unique id.");
            return new RankEnvironment(rank, size, local, id);
        }
    }

    /// <summary>
    /// Starts one process per GPU of this host from one command, torchrun-style: the same program and arguments, with
    /// <see cref="RankEnvironment"/>'s variables set, <c>CUDA_VISIBLE_DEVICES</c> narrowed to the rank's GPU (each rank's
    /// context then opens its device 0), and one ncclUniqueId made here and passed to all. Output goes to this console;
    /// when a rank fails the others are stopped, and the exit code is the first failure's.
    /// </summary>
    public static class RankLauncher
    {
        /// <summary>The start information of rank <paramref name="rank"/> (no process is started).</summary>
        public static ProcessStartInfo StartInfo(
            string program, IEnumerable<string> arguments, int rank, int worldSize, string ncclId, IReadOnlyList<string>? visibleDevices = null)
        {
            ArgumentException.ThrowIfNullOrEmpty(program);
            ArgumentNullException.ThrowIfNull(arguments);
            var info = new ProcessStartInfo(program) { UseShellExecute = false };
            foreach (var argument in arguments)
                info.ArgumentList.Add(argument);
            info.Environment[RankEnvironment.RankVariable] = rank.ToString(CultureInfo.InvariantCulture);
            info.Environment[RankEnvironment.LocalRankVariable] = rank.ToString(CultureInfo.InvariantCulture);
            info.Environment[RankEnvironment.WorldSizeVariable] = worldSize.ToString(CultureInfo.InvariantCulture);
            info.Environment[RankEnvironment.NcclIdVariable] = ncclId;
            info.Environment["CUDA_VISIBLE_DEVICES"] = visibleDevices is { Count: > 0 } ? visibleDevices[rank % visibleDevices.Count] : rank.ToString(CultureInfo.InvariantCulture);
            return info;
        }

        /// <summary>
        /// The command that runs this process again: its executable (a single-file app, an apphost) or <c>dotnet</c> with the
        /// entry assembly, then <paramref name="arguments"/>.
        /// </summary>
        public static (string Program, string[] Arguments) ThisProcess(IEnumerable<string> arguments)
        {
            ArgumentNullException.ThrowIfNull(arguments);
            string program = Environment.ProcessPath ?? throw new InvalidOperationException("this process's executable is unknown.");
            bool host = Path.GetFileNameWithoutExtension(program).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
            // Under the dotnet host the first command-line argument is the app's DLL (a single-file app has no DLL path).
            string entry = Environment.GetCommandLineArgs()[0];
            return host && entry.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? (program, arguments.Prepend(entry).ToArray()) : (program, arguments.ToArray());
        }

        /// <summary>Runs <paramref name="gpus"/> ranks of this program with <paramref name="arguments"/>; returns the exit code.</summary>
        public static int Run(int gpus, IEnumerable<string> arguments)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(gpus, 1);
            var (program, args) = ThisProcess(arguments);
            string id = Nccl.NewUniqueId();
            var visible = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (visible is { Length: > 0 } && visible.Length < gpus)
                throw new ArgumentException($"--gpus {gpus}, but CUDA_VISIBLE_DEVICES={string.Join(",", visible)} names {visible.Length}.");
            return Run(Enumerable.Range(0, gpus).Select(rank => StartInfo(program, args, rank, gpus, id, visible)).ToArray());
        }

        /// <summary>Starts every rank, waits for all, and stops the rest when one fails; the first failure's exit code, else 0.</summary>
        internal static int Run(IReadOnlyList<ProcessStartInfo> starts)
        {
            var ranks = new List<Process>();
            int firstFailure = 0;
            var gate = new object();
            try
            {
                for (int rank = 0; rank < starts.Count; rank++)
                    ranks.Add(Process.Start(starts[rank]) ?? throw new InvalidOperationException($"rank {rank} did not start."));
                // Wait for all; the first rank to fail stops the others (a rank waiting in NCCL for a dead peer never returns).
                var waits = ranks.Select((process, rank) => new Thread(() =>
                {
                    process.WaitForExit();
                    lock (gate)
                    {
                        if (process.ExitCode == 0 || firstFailure != 0)
                            return;
                        firstFailure = process.ExitCode;
                        Console.Error.WriteLine($"rank {rank} exited with {process.ExitCode}; stopping the other ranks.");
                        foreach (var other in ranks.Where(p => p != process && !p.HasExited))
                            other.Kill(entireProcessTree: true);
                    }
                })).ToList();
                waits.ForEach(t => t.Start());
                waits.ForEach(t => t.Join());
                return firstFailure;
            }
            finally
            {
                foreach (var process in ranks)
                {
                    if (!process.HasExited)
                        process.Kill(entireProcessTree: true);
                    process.Dispose();
                }
            }
        }
    }
}
