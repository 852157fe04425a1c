using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;

namespace XFormers
{
    /// <summary>
    /// Safetensors files (the format PyTorch's <c>safetensors.torch.save_file</c>/<c>load_file</c> read and write)
    /// to and from <see cref="Tensor{T}"/>. F32, F16 and BF16 load into a tensor of float, <see cref="System.Half"/>
    /// (or ILGPU.Half) or <see cref="BFloat16"/>: bit for bit when the file's dtype is the tensor's, else widened
    /// exactly to float and rounded to nearest even. I32 loads into <c>Tensor&lt;int&gt;</c>.
    /// </summary>
    public static class SafeTensorsFile
    {
        /// <summary>Every tensor of the file, converted to <typeparamref name="T"/>; the caller disposes them.</summary>
        public static Dictionary<string, Tensor<T>> Load<T>(XFormersContext context, string path)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(context);
            var (stored, _) = SafeTensors.Load(path);
            var result = new Dictionary<string, Tensor<T>>();
            try
            {
                foreach (var (name, tensor) in stored)
                    result[name] = tensor.ToTensor<T>(context);
            }
            catch
            {
                foreach (var loaded in result.Values)
                    loaded.Dispose();
                throw;
            }
            return result;
        }

        /// <summary>One tensor of the file, converted to <typeparamref name="T"/>.</summary>
        public static Tensor<T> LoadTensor<T>(XFormersContext context, string path, string name)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(context);
            ArgumentNullException.ThrowIfNull(name);
            var (stored, _) = SafeTensors.Load(path);
            if (!stored.TryGetValue(name, out var tensor))
                throw new KeyNotFoundException($"{path} has no tensor '{name}'; it has {string.Join(", ", stored.Keys.Order(StringComparer.Ordinal))}.");
            return tensor.ToTensor<T>(context);
        }

        /// <summary>Writes tensors under their names (F32, F16, BF16 or I32 by element type), atomically.</summary>
        public static void Save<T>(string path, IReadOnlyDictionary<string, Tensor<T>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(tensors);
            SafeTensors.Save(path, tensors.Select(pair => pair.Value.ToSafeTensor(pair.Key)), metadata);
        }

        /// <summary>A host copy of a tensor's data under a safetensors dtype (F32, F16, BF16 or I32 by element type).</summary>
        public static SafeTensor ToSafeTensor<T>(this Tensor<T> tensor, string name)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(tensor);
            ArgumentNullException.ThrowIfNull(name);
            string dtype = DTypeOf<T>() ?? throw new NotSupportedException($"safetensors: no dtype for {typeof(T).FullName}; use float, System.Half, BFloat16 or int.");
            var shape = tensor.Shape.ToArray().Select(d => (long)d).ToArray();
            return new SafeTensor(name, dtype, shape, MemoryMarshal.AsBytes(tensor.ToArray().AsSpan()).ToArray());
        }

        /// <summary>A new tensor on <paramref name="context"/> with this safetensors tensor's shape and values, converted to <typeparamref name="T"/>.</summary>
        public static Tensor<T> ToTensor<T>(this SafeTensor tensor, XFormersContext context)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(tensor);
            ArgumentNullException.ThrowIfNull(context);
            var shape = tensor.Shape.Select(d => d is >= 0 and <= int.MaxValue ? (int)d
                : throw new NotSupportedException($"{tensor.Name}: dimension {d} does not fit a tensor dimension (int).")).ToArray();
            string? target = DTypeOf<T>();
            if (target is null)
                throw new NotSupportedException($"{tensor.Name}: cannot load into Tensor<{typeof(T).FullName}>; use float, System.Half, ILGPU.Half, BFloat16 or int.");
            if (tensor.DType == target)
                return Tensor<T>.FromSpan(context, MemoryMarshal.Cast<byte, T>(tensor.Data), shape);
            if (target == "I32" || tensor.DType is not ("F32" or "F16" or "BF16"))
                throw new NotSupportedException($"{tensor.Name} is {tensor.DType}; Tensor<{typeof(T).Name}> loads {(target == "I32" ? "I32" : "F32, F16 or BF16")}.");
            var values = new T[tensor.Data.Length / SafeTensors.ElementSize(tensor.DType)];
            var bytes = tensor.Data.AsSpan();
            for (int i = 0; i < values.Length; i++)
                values[i] = ElementType.FromFloat<T>(ReadFloat(tensor.DType, bytes, i));
            return Tensor<T>.FromSpan(context, values, shape);
        }

        private static float ReadFloat(string dtype, ReadOnlySpan<byte> bytes, int i) => dtype switch
        {
            "F32" => MemoryMarshal.Cast<byte, float>(bytes)[i],
            "F16" => (float)MemoryMarshal.Cast<byte, System.Half>(bytes)[i],
            _ => new BFloat16(MemoryMarshal.Cast<byte, ushort>(bytes)[i]).ToFloat(),
        };

        private static string? DTypeOf<T>() =>
            typeof(T) == typeof(float) ? "F32"
            : typeof(T) == typeof(System.Half) || typeof(T) == typeof(ILGPU.Half) ? "F16"
            : typeof(T) == typeof(BFloat16) ? "BF16"
            : typeof(T) == typeof(int) ? "I32"
            : null;
    }
}
