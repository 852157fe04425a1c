using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace XFormers.Bench
{
    /// <summary>
    /// Writes the .safetensors format: an 8-byte little-endian header length, a JSON header naming each tensor's
    /// dtype, shape and byte range, then the raw little-endian data. PyTorch's <c>safetensors.torch.load_file</c> reads it.
    /// </summary>
    internal sealed class SafeTensorsWriter
    {
        private readonly List<(string Name, string DType, int[] Shape, byte[] Data)> tensors = new();
        private readonly Dictionary<string, string> metadata = new();

        public void Add<T>(string name, Tensor<T> tensor)
            where T : unmanaged
        {
            string dtype = typeof(T) == typeof(float) ? "F32" : typeof(T) == typeof(ILGPU.Half) ? "F16" : typeof(T) == typeof(BFloat16) ? "BF16"
                : throw new NotSupportedException(typeof(T).Name);
            tensors.Add((name, dtype, tensor.Shape.ToArray(), MemoryMarshal.AsBytes(tensor.ToArray().AsSpan()).ToArray()));
        }

        public void Metadata(string key, string value) => metadata[key] = value;

        public void Save(string path)
        {
            var header = new Dictionary<string, object>();
            if (metadata.Count > 0)
                header["__metadata__"] = metadata;
            long offset = 0;
            foreach (var (name, dtype, shape, data) in tensors)
            {
                header[name] = new Dictionary<string, object> { ["dtype"] = dtype, ["shape"] = shape, ["data_offsets"] = new[] { offset, offset + data.Length } };
                offset += data.Length;
            }
            var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
            // The header is padded with spaces to a multiple of 8 bytes, as the reference writer does.
            int padded = (json.Length + 7) / 8 * 8;
            using var file = File.Create(path);
            file.Write(BitConverter.GetBytes((ulong)padded));
            file.Write(json);
            file.Write(Enumerable.Repeat((byte)' ', padded - json.Length).ToArray());
            foreach (var t in tensors)
                file.Write(t.Data);
        }
    }
}
