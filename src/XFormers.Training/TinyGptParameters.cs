using System;
using System.Collections.Generic;
using ILGPU;

namespace XFormers.Training
{
    /// <summary>
    /// TinyGPT's parameters as llm.c's <c>ParameterTensors</c>: one property per tensor, each resolved once into views
    /// of the <see cref="ParameterStore{T}"/>'s flat buffers, so a step reads fields and never looks a name up. The
    /// names and the state_dict order are <see cref="TinyGptConfig.ParameterLayout"/>'s (PyTorch's, which checkpoints
    /// and scripts/tinygpt_torch.py use).
    /// </summary>
    internal sealed class TinyGptParameters<T>
        where T : unmanaged
    {
        public TinyGptParameters(ParameterStore<T> store, TinyGptConfig config)
        {
            ArgumentNullException.ThrowIfNull(store);
            ArgumentNullException.ThrowIfNull(config);
            TokenEmbedding = store["tok_emb.weight"];
            PositionEmbedding = store["pos_emb.weight"];
            var blocks = new BlockParameters<T>[config.Layers];
            for (int l = 0; l < blocks.Length; l++)
                blocks[l] = new BlockParameters<T>(store, $"blocks.{l}.");
            Blocks = blocks;
            FinalNorm = new LayerNormParameters<T>(store, "ln_f");
            Head = store["head.weight"];
            int resolved = 2 + BlockParameters<T>.TensorCount * blocks.Length + 2 + 1;
            if (resolved != store.Slices.Count)
                throw new ArgumentException($"the store holds {store.Slices.Count} tensors; TinyGPT resolves {resolved}.", nameof(store));
        }

        public Parameter<T> TokenEmbedding { get; }

        public Parameter<T> PositionEmbedding { get; }

        public IReadOnlyList<BlockParameters<T>> Blocks { get; }

        public LayerNormParameters<T> FinalNorm { get; }

        public Parameter<T> Head { get; }
    }

    /// <summary>One transformer block's parameters: LayerNorm → QKV → projection; LayerNorm → SwiGLU (w12, w3).</summary>
    internal sealed class BlockParameters<T>
        where T : unmanaged
    {
        /// <summary>Tensors per block (a LayerNorm is two: weight and bias).</summary>
        internal const int TensorCount = 8;

        internal BlockParameters(ParameterStore<T> store, string prefix)
        {
            Ln1 = new LayerNormParameters<T>(store, prefix + "ln1");
            Qkv = store[prefix + "attn.qkv.weight"];
            Proj = store[prefix + "attn.proj.weight"];
            Ln2 = new LayerNormParameters<T>(store, prefix + "ln2");
            W12 = store[prefix + "mlp.w12.weight"];
            W3 = store[prefix + "mlp.w3.weight"];
        }

        public LayerNormParameters<T> Ln1 { get; }

        /// <summary>[3·Dim, Dim]: Q, K and V projections stacked.</summary>
        public Parameter<T> Qkv { get; }

        public Parameter<T> Proj { get; }

        public LayerNormParameters<T> Ln2 { get; }

        /// <summary>[2·Hidden, Dim]: the SwiGLU's gate and value projections stacked.</summary>
        public Parameter<T> W12 { get; }

        public Parameter<T> W3 { get; }
    }

    /// <summary>A LayerNorm's weight and bias, adjacent in the flat buffers; the kernels read both through one view.</summary>
    internal readonly struct LayerNormParameters<T>
        where T : unmanaged
    {
        internal LayerNormParameters(ParameterStore<T> store, string prefix)
        {
            Weight = store[prefix + ".weight"];
            Bias = store[prefix + ".bias"];
            if (Bias.Slice.Offset != Weight.Slice.Offset + Weight.Slice.Length)
                throw new ArgumentException($"{prefix}.bias must follow {prefix}.weight in the layout.", nameof(store));
            Values = store.Params.SubView(Weight.Slice.Offset, 2 * Weight.Slice.Length);
            Grads = store.Grads.SubView(Weight.Slice.Offset, 2 * Weight.Slice.Length);
        }

        public Parameter<T> Weight { get; }

        public Parameter<T> Bias { get; }

        /// <summary>Weight then bias, fp32 master values.</summary>
        public ArrayView<float> Values { get; }

        /// <summary>Weight then bias, fp32 gradients.</summary>
        public ArrayView<float> Grads { get; }
    }
}
