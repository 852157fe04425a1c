using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace XFormers
{
    /// <summary>One tensor of a safetensors file: dtype string ("F32", "F16", "BF16", "I32", …), shape, raw little-endian bytes.</summary>
    public sealed record SafeTensor(string Name, string DType, long[] Shape, byte[] Data)
    {
        public static SafeTensor FromFloats(string name, float[] values, params long[] shape) =>
            new(name, "F32", shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

        /// <summary>A copy of a tensor's data (float, fp16, bf16 or int) with its shape.</summary>
        public static SafeTensor From<T>(string name, Tensor<T> tensor)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(tensor);
            string dtype = typeof(T) == typeof(float) ? "F32" : typeof(T) == typeof(ILGPU.Half) ? "F16" : typeof(T) == typeof(BFloat16) ? "BF16"
                : typeof(T) == typeof(int) ? "I32" : throw new NotSupportedException($"safetensors: no dtype for {typeof(T).Name}.");
            var shape = tensor.Shape.ToArray().Select(d => (long)d).ToArray();
            return new SafeTensor(name, dtype, shape, MemoryMarshal.AsBytes(tensor.ToArray().AsSpan()).ToArray());
        }

        public float[] ToFloats()
        {
            if (DType != "F32")
                throw new InvalidOperationException($"{Name} is {DType}, not F32.");
            return MemoryMarshal.Cast<byte, float>(Data).ToArray();
        }
    }

    /// <summary>
    /// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header mapping each
    /// name to {dtype, shape, data_offsets} plus an optional "__metadata__" map of strings, padded with spaces
    /// to 8 bytes, then the tensors' bytes back to back. <see cref="Save"/> writes a temporary file beside the
    /// target, flushes it and renames it over the target, so a crash leaves the old file or the new one.
    /// </summary>
    public static class SafeTensors
    {
        public const string MetadataKey = "__metadata__";

        public static void Save(string path, IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
        {
            ArgumentException.ThrowIfNullOrEmpty(path);
            ArgumentNullException.ThrowIfNull(tensors);
            var list = tensors.ToList();
            var header = Header(list, metadata);
            string full = Path.GetFullPath(path);
            if (Directory.Exists(full))
                throw new CheckpointException(path, "file", "is a directory; give the path of a .safetensors file.");
            string temp = TempPath(full);
            try
            {
                using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
                {
                    Span<byte> length = stackalloc byte[8];
                    BitConverter.TryWriteBytes(length, (ulong)header.Length);
                    if (!BitConverter.IsLittleEndian)
                        length.Reverse();
                    stream.Write(length);
                    stream.Write(header);
                    foreach (var tensor in list)
                        stream.Write(tensor.Data);
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, full, overwrite: true);
            }
            catch
            {
                File.Delete(temp);
                throw;
            }
        }

        /// <summary>The padded JSON header for these tensors, in order.</summary>
        public static byte[] Header(IReadOnlyList<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
        {
            using var json = new MemoryStream();
            using (var writer = new Utf8JsonWriter(json))
            {
                writer.WriteStartObject();
                if (metadata is { Count: > 0 })
                {
                    writer.WriteStartObject(MetadataKey);
                    foreach (var (key, value) in metadata)
                        writer.WriteString(key, value);
                    writer.WriteEndObject();
                }
                long offset = 0;
                var names = new HashSet<string>();
                foreach (var tensor in tensors)
                {
                    if (!names.Add(tensor.Name) || tensor.Name == MetadataKey)
                        throw new ArgumentException($"tensor name '{tensor.Name}' is repeated or reserved.", nameof(tensors));
                    long expected = tensor.Shape.Aggregate(1L, (a, d) => a * d) * ElementSize(tensor.DType);
                    if (expected != tensor.Data.LongLength)
                        throw new ArgumentException($"{tensor.Name}: {tensor.DType} {string.Join("x", tensor.Shape)} needs {expected} bytes, has {tensor.Data.LongLength}.", nameof(tensors));
                    writer.WriteStartObject(tensor.Name);
                    writer.WriteString("dtype", tensor.DType);
                    writer.WriteStartArray("shape");
                    foreach (var d in tensor.Shape)
                        writer.WriteNumberValue(d);
                    writer.WriteEndArray();
                    writer.WriteStartArray("data_offsets");
                    writer.WriteNumberValue(offset);
                    writer.WriteNumberValue(offset + tensor.Data.LongLength);
                    writer.WriteEndArray();
                    writer.WriteEndObject();
                    offset += tensor.Data.LongLength;
                }
                writer.WriteEndObject();
            }
            int padded = (int)((json.Length + 7) / 8 * 8);
            var header = new byte[padded];
            json.ToArray().CopyTo(header, 0);
            header.AsSpan((int)json.Length).Fill((byte)' ');
            return header;
        }

        /// <summary>
        /// Reads every tensor and the metadata of a file, checking the header as it goes: its length, its JSON, each tensor's
        /// dtype, shape and byte range (inside the data, matching the shape, no overlap, no hole) and that metadata values are
        /// strings. Any problem is a <see cref="CheckpointException"/> naming the file and the tensor or key.
        /// </summary>
        public static (IReadOnlyDictionary<string, SafeTensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Load(string path)
        {
            ArgumentException.ThrowIfNullOrEmpty(path);
            var bytes = ReadFile(path);
            if (bytes.Length < 8)
                throw new CheckpointException(path, "file", $"{bytes.Length} bytes is too short for a safetensors file.");
            ulong headerLength = BitConverter.ToUInt64(bytes, 0);
            if (headerLength > (ulong)(bytes.Length - 8))
                throw new CheckpointException(path, "header", $"its length {headerLength} runs past the end of the file ({bytes.Length} bytes).");
            var dataStart = 8 + (int)headerLength;
            long dataLength = bytes.Length - dataStart;
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
            }
            catch (JsonException ex)
            {
                throw new CheckpointException(path, "header", "is not valid JSON: " + ex.Message, ex);
            }
            using (document)
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                    throw new CheckpointException(path, "header", $"is a JSON {document.RootElement.ValueKind}, not an object.");
                var tensors = new Dictionary<string, SafeTensor>();
                var metadata = new Dictionary<string, string>();
                var ranges = new List<(long Begin, long End, string Name)>();
                foreach (var property in document.RootElement.EnumerateObject())
                {
                    if (property.Name == MetadataKey)
                    {
                        if (property.Value.ValueKind != JsonValueKind.Object)
                            throw new CheckpointException(path, "metadata", "is not a JSON object of strings.");
                        foreach (var entry in property.Value.EnumerateObject())
                        {
                            if (entry.Value.ValueKind != JsonValueKind.String)
                                throw new CheckpointException(path, $"metadata {entry.Name}", $"is a JSON {entry.Value.ValueKind}; safetensors metadata values are strings.");
                            metadata[entry.Name] = entry.Value.GetString()!;
                        }
                        continue;
                    }
                    var (dtype, shape, begin, end) = ReadEntry(path, property, dataLength);
                    if (tensors.ContainsKey(property.Name))
                        throw new CheckpointException(path, $"tensor {property.Name}", "appears twice in the header.");
                    ranges.Add((begin, end, property.Name));
                    tensors[property.Name] = new SafeTensor(property.Name, dtype, shape, bytes.AsSpan(dataStart + (int)begin, (int)(end - begin)).ToArray());
                }
                // The tensors' bytes tile the data exactly: sorted by offset, each starts where the previous one ends.
                long at = 0;
                foreach (var (begin, end, name) in ranges.OrderBy(r => r.Begin).ThenBy(r => r.End))
                {
                    if (begin != at)
                        throw new CheckpointException(path, $"tensor {name}", begin < at ? $"bytes [{begin}, {end}) overlap another tensor's." : $"bytes start at {begin}, leaving a hole after {at}.");
                    at = end;
                }
                if (at != dataLength)
                    throw new CheckpointException(path, "file", $"the header describes {at} bytes of data; the file holds {dataLength}.");
                return (tensors, metadata);
            }
        }

        /// <summary>One tensor's header entry: a known dtype, a shape of non-negative sizes, byte offsets inside the data that match the shape.</summary>
        private static (string DType, long[] Shape, long Begin, long End) ReadEntry(string path, JsonProperty property, long dataLength)
        {
            string subject = $"tensor {property.Name}";
            var entry = property.Value;
            if (entry.ValueKind != JsonValueKind.Object)
                throw new CheckpointException(path, subject, $"its header entry is a JSON {entry.ValueKind}, not an object.");
            if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
                throw new CheckpointException(path, subject, "has no dtype string.");
            string dtype = dtypeElement.GetString()!;
            if (!KnownDTypes.Contains(dtype))
                throw new CheckpointException(path, subject, $"dtype '{dtype}' is not a safetensors dtype.");
            long[] shape = Integers(path, subject, entry, "shape");
            long[] offsets = Integers(path, subject, entry, "data_offsets");
            if (shape.Any(d => d < 0))
                throw new CheckpointException(path, subject, $"shape [{string.Join(", ", shape)}] has a negative size.");
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength)
                throw new CheckpointException(path, subject, $"data_offsets [{string.Join(", ", offsets)}] are not a byte range inside the {dataLength} bytes of data.");
            long bytes = ElementSize(dtype);
            foreach (long d in shape)
            {
                if (d != 0 && bytes > long.MaxValue / d)
                    throw new CheckpointException(path, subject, $"shape [{string.Join(", ", shape)}] is too large.");
                bytes *= d;
            }
            if (bytes != offsets[1] - offsets[0])
                throw new CheckpointException(path, subject, $"{dtype} [{string.Join(", ", shape)}] needs {bytes} bytes; its data_offsets span {offsets[1] - offsets[0]}.");
            return (dtype, shape, offsets[0], offsets[1]);
        }

        private static long[] Integers(string path, string subject, JsonElement entry, string key)
        {
            if (!entry.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array)
                throw new CheckpointException(path, subject, $"has no {key} array.");
            var values = new long[array.GetArrayLength()];
            int i = 0;
            foreach (var item in array.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out values[i++]))
                    throw new CheckpointException(path, subject, $"{key} holds {item}, not an integer.");
            }
            return values;
        }

        /// <summary>The whole file; a directory, a missing file or one that cannot be read is a <see cref="CheckpointException"/>.</summary>
        private static byte[] ReadFile(string path)
        {
            if (Directory.Exists(path))
                throw new CheckpointException(path, "file", "is a directory; give the path of a .safetensors file.");
            try
            {
                return File.ReadAllBytes(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new CheckpointException(path, "file", (ex is FileNotFoundException or DirectoryNotFoundException ? "does not exist" : "cannot be read") + $" ({ex.Message})", ex);
            }
        }

        /// <summary>
        /// Checks, before a long run, that a checkpoint can later be written to <paramref name="path"/>: not a directory,
        /// its folder exists and takes a new file, an existing file can be replaced. Removes temporary files a killed save
        /// left beside it (they never replace the checkpoint: only a finished save renames its file over it).
        /// </summary>
        public static void PrepareTarget(string path)
        {
            ArgumentException.ThrowIfNullOrEmpty(path);
            string full = Path.GetFullPath(path);
            if (Directory.Exists(full))
                throw new CheckpointException(path, "file", "is a directory; give the path of a .safetensors file.");
            string directory = Path.GetDirectoryName(full)!;
            if (!Directory.Exists(directory))
                throw new CheckpointException(path, "file", $"its folder {directory} does not exist.");
            foreach (var stale in Directory.EnumerateFiles(directory, $".{Path.GetFileName(full)}.*.tmp"))
            {
                if (!IsOwnedByLiveProcess(stale))
                    TryDelete(stale);
            }
            string probe = TempPath(full);
            try
            {
                using (new FileStream(probe, FileMode.Create, FileAccess.Write, FileShare.None))
                {
                }
                if (File.Exists(full))
                {
                    if ((File.GetAttributes(full) & FileAttributes.ReadOnly) != 0)
                        throw new CheckpointException(path, "file", "is read-only; a checkpoint could not replace it.");
                    using (new FileStream(full, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
                    {
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new CheckpointException(path, "file", $"cannot be written ({ex.Message}).", ex);
            }
            finally
            {
                TryDelete(probe);
            }
        }

        /// <summary>The temporary file a save by this process writes before renaming it over <paramref name="full"/>.</summary>
        private static string TempPath(string full) => Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");

        /// <summary>Whether a temporary file's name carries the id of a process that still runs (a save in progress).</summary>
        private static bool IsOwnedByLiveProcess(string tempFile)
        {
            var parts = Path.GetFileName(tempFile).Split('.');
            if (parts.Length < 3 || !int.TryParse(parts[^2], out int pid) || pid == Environment.ProcessId)
                return false;
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                return !process.HasExited;
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
            {
                return false;
            }
        }

        private static void TryDelete(string file)
        {
            try
            {
                File.Delete(file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }

        private static readonly HashSet<string> KnownDTypes = new() { "F64", "I64", "U64", "F32", "I32", "U32", "F16", "BF16", "I16", "U16", "I8", "U8", "BOOL" };

        public static int ElementSize(string dtype) => dtype switch
        {
            "F64" or "I64" or "U64" => 8,
            "F32" or "I32" or "U32" => 4,
            "F16" or "BF16" or "I16" or "U16" => 2,
            "I8" or "U8" or "BOOL" => 1,
            _ => throw new ArgumentException($"unknown safetensors dtype '{dtype}'.", nameof(dtype)),
        };
    }
}
