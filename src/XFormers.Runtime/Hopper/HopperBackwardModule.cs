using System;

namespace XFormers.Hopper
{
    /// <summary>
    /// A variant's backward as one sm_90a PTX module, emitted by the generator at build time, with two entry points: the
    /// dK/dV pass (a CTA owns key rows and streams the query tiles that see them) and the dQ pass (a CTA owns query rows and
    /// streams key tiles; it also writes dBias when the variant asks for it). Neither uses atomics: the same inputs give the
    /// same bits on every run. The runtime compiles it through the CUDA driver on compute capability 9.0.
    /// </summary>
    public sealed class HopperBackwardModule
    {
        /// <summary>Created by generated code; the numbers come from the generator's plans of the two kernels.</summary>
        /// <remarks>
        /// The PTX comes through <paramref name="ptx"/> when first needed: generated code keeps it as UTF-8 data (a
        /// u8 literal), out of the assembly's string heap, and a process that never runs the backward on Hopper never
        /// decodes it.
        /// </remarks>
        public HopperBackwardModule(
            Func<string> ptx, int headDim,
            string keysAndValuesEntryPoint, int keysAndValuesThreads, int keysAndValuesSharedBytes, int keyRows, int queryTileRows,
            string queriesEntryPoint, int queriesThreads, int queriesSharedBytes, int queryRows, int keyTileRows)
        {
            ArgumentNullException.ThrowIfNull(ptx);
            this.ptx = new Lazy<string>(ptx);
            hash = new Lazy<string>(() =>
                Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Ptx))));
            KeysAndValuesEntryPoint = keysAndValuesEntryPoint ?? throw new ArgumentNullException(nameof(keysAndValuesEntryPoint));
            QueriesEntryPoint = queriesEntryPoint ?? throw new ArgumentNullException(nameof(queriesEntryPoint));
            HeadDim = headDim;
            KeysAndValuesThreads = keysAndValuesThreads;
            KeysAndValuesSharedBytes = keysAndValuesSharedBytes;
            KeyRows = keyRows;
            QueryTileRows = queryTileRows;
            QueriesThreads = queriesThreads;
            QueriesSharedBytes = queriesSharedBytes;
            QueryRows = queryRows;
            KeyTileRows = keyTileRows;
        }

        private readonly Lazy<string> ptx;
        private readonly Lazy<string> hash;

        /// <summary>The module's text (<c>.target sm_90a</c>, both entry points).</summary>
        public string Ptx => ptx.Value;
        public int HeadDim { get; }
        /// <summary>The PTX's SHA-256 (hex): the launcher loads a module once per context under it.</summary>
        public string Hash => hash.Value;

        public string KeysAndValuesEntryPoint { get; }
        public int KeysAndValuesThreads { get; }
        /// <summary>Dynamic shared memory a dK/dV CTA asks for, in bytes.</summary>
        public int KeysAndValuesSharedBytes { get; }
        /// <summary>Key rows a dK/dV CTA owns.</summary>
        public int KeyRows { get; }
        /// <summary>Rows of the Q and dO tiles the dK/dV pass streams.</summary>
        public int QueryTileRows { get; }

        public string QueriesEntryPoint { get; }
        public int QueriesThreads { get; }
        /// <summary>Dynamic shared memory a dQ CTA asks for, in bytes.</summary>
        public int QueriesSharedBytes { get; }
        /// <summary>Query rows a dQ CTA owns.</summary>
        public int QueryRows { get; }
        /// <summary>Rows of the K and V tiles the dQ pass streams.</summary>
        public int KeyTileRows { get; }

        /// <summary>
        /// Where dK and dV take a pass each (HeadDim 256: together they would need every register a thread has), the dV
        /// pass's entry point, launched with the dK/dV pass's grid and tensor maps; the first entry point then computes dK
        /// alone. Null when one pass computes both.
        /// </summary>
        public string? ValuesEntryPoint { get; init; }

        /// <summary>Dynamic shared memory a dV CTA asks for, in bytes (with <see cref="ValuesEntryPoint"/>).</summary>
        public int ValuesSharedBytes { get; init; }

        public override string ToString() =>
            $"{KeysAndValuesEntryPoint} ({KeyRows} keys, {QueryTileRows}-row query tiles, {KeysAndValuesSharedBytes} B shared) + " +
            $"{QueriesEntryPoint} ({QueryRows} queries, {KeyTileRows}-row key tiles, {QueriesSharedBytes} B shared), HeadDim {HeadDim}";
    }
}
