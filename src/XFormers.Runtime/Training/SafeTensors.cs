using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace XFormers.Training
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
            string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
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

        /// <summary>Reads every tensor and the metadata of a file.</summary>
        public static (IReadOnlyDictionary<string, SafeTensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Load(string path)
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length < 8)
                throw new InvalidDataException($"{path}: too short for a safetensors file.");
            ulong headerLength = BitConverter.ToUInt64(bytes, 0);
            if (headerLength > (ulong)(bytes.Length - 8))
                throw new InvalidDataException($"{path}: header length {headerLength} runs past the end of the file.");
            var dataStart = 8 + (int)headerLength;
            using var document = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength));
            var tensors = new Dictionary<string, SafeTensor>();
            var metadata = new Dictionary<string, string>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    foreach (var entry in property.Value.EnumerateObject())
                        metadata[entry.Name] = entry.Value.GetString() ?? "";
                    continue;
                }
                string dtype = property.Value.GetProperty("dtype").GetString()!;
                long[] shape = property.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                long[] offsets = property.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || dataStart + offsets[1] > bytes.Length)
                    throw new InvalidDataException($"{path}: tensor {property.Name} has bad data_offsets.");
                var data = bytes.AsSpan(dataStart + (int)offsets[0], (int)(offsets[1] - offsets[0])).ToArray();
                tensors[property.Name] = new SafeTensor(property.Name, dtype, shape, data);
            }
            return (tensors, metadata);
        }

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
