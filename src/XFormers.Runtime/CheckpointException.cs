using System;

namespace XFormers
{
    /// <summary>
    /// A checkpoint that cannot be read, trusted or written: one line naming the file and the tensor or metadata key
    /// at fault (<c>run.safetensors: tensor head.weight: shape [64, 32], this model needs [32, 64]</c>).
    /// </summary>
    public sealed class CheckpointException : Exception
    {
        public CheckpointException(string path, string subject, string problem, Exception? innerException = null)
            : base(OneLine($"{path}: {subject}: {problem}"), innerException)
        {
            Path = path;
            Subject = subject;
        }

        /// <summary>The checkpoint file.</summary>
        public string Path { get; }

        /// <summary>What is wrong in it: <c>tensor NAME</c>, <c>metadata KEY</c>, <c>header</c> or <c>file</c>.</summary>
        public string Subject { get; }

        private static string OneLine(string text) => text.Replace("\r", " ", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
    }
}
