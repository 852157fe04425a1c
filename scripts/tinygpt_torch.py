#!/usr/bin/env python3
"""The seed's TinyGPT in PyTorch: the reference for samples/XFormers.TinyGpt.

Same model and names as the .NET trainer (token + position embeddings, blocks of LayerNorm -> QKV ->
causal SDPA -> projection, LayerNorm -> SwiGLU (w12, w3; xformers.ops.SwiGLU's layout, no bias), final
LayerNorm, linear head), fp16 autocast with torch.amp.GradScaler, AdamW (lr 3e-3, weight decay 0.01),
the counting task (inputs (start + t) mod vocab, targets one ahead).

  python3 tinygpt_torch.py train                 # seed run: step / loss / accuracy
  python3 tinygpt_torch.py bench [--compile]     # ms/step after warm-up (eager, or torch.compile)
  python3 tinygpt_torch.py bench --gpt2          # GPT-2-small shape: d 768, 12 layers, 12 heads, seq 1024, batch 8, vocab 50304
  python3 tinygpt_torch.py check FILE.safetensors  # load a .NET checkpoint with safetensors.torch.load_file and evaluate it
  python3 tinygpt_torch.py same A.safetensors B.safetensors  # are two checkpoints bit-identical?
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class SwiGLU(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.w12 = nn.Linear(d, 2 * hidden, bias=False)
        self.w3 = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class CausalSelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, d, heads, hidden):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = SwiGLU(d, hidden)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab=64, d=128, layers=3, heads=8, seq=64, hidden=None):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos_emb = nn.Embedding(seq, d)
        self.blocks = nn.ModuleList([Block(d, heads, hidden or 4 * d) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx):
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def counting_batch(batch, seq, vocab, device, generator=None):
    start = torch.randint(0, vocab, (batch, 1), device=device, generator=generator)
    x = (start + torch.arange(seq, device=device)) % vocab
    return x, (x + 1) % vocab


def make(args, device):
    model = TinyGPT(args.vocab, args.d, args.layers, args.heads, args.seq).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, fused=device == "cuda")
    scaler = torch.amp.GradScaler(device)
    return model, opt, scaler


def train_step(model, opt, scaler, x, y, vocab):
    with torch.autocast("cuda", dtype=torch.float16):
        logits = model(x)
    loss = F.cross_entropy(logits.float().view(-1, vocab), y.view(-1))
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss, logits


def train(args):
    torch.manual_seed(args.seed)
    model, opt, scaler = make(args, "cuda")
    t0 = time.perf_counter()
    first = None
    for step in range(args.steps):
        x, y = counting_batch(args.batch, args.seq, args.vocab, "cuda")
        loss, logits = train_step(model, opt, scaler, x, y, args.vocab)
        if step % 20 == 0 or step == args.steps - 1 or first is None:
            acc = (logits.argmax(-1) == y).float().mean().item()
            if first is None and acc >= 0.99:
                first = step
            if step % 20 == 0 or step == args.steps - 1:
                print(f"step {step:5d} | loss {loss.item():.4f} | acc {acc:.3f}", flush=True)
    torch.cuda.synchronize()
    print(f"torch train: {args.steps} steps in {time.perf_counter() - t0:.1f} s; >= 99 % first seen at step {first} (checked every step until then)")


def bench(args):
    torch.manual_seed(args.seed)
    model, opt, scaler = make(args, "cuda")
    runner = torch.compile(model) if args.compile else model
    n_params = sum(p.numel() for p in model.parameters())
    warmup = args.warmup if args.warmup is not None else (30 if args.compile else 10)
    for _ in range(warmup):
        x, y = counting_batch(args.batch, args.seq, args.vocab, "cuda")
        train_step(runner, opt, scaler, x, y, args.vocab)
    torch.cuda.synchronize()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.timed):
            x, y = counting_batch(args.batch, args.seq, args.vocab, "cuda")
            loss, _ = train_step(runner, opt, scaler, x, y, args.vocab)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / args.timed)
    times.sort()
    ms = times[len(times) // 2] * 1e3
    mode = "compile" if args.compile else "eager"
    print(f"torch {mode} bench: {ms:.3f} ms/step (median of {args.repeats} x {args.timed} steps), "
          f"{args.batch * args.seq / ms * 1e3:.0f} tokens/s, {n_params:,} parameters, "
          f"d {args.d} layers {args.layers} heads {args.heads} seq {args.seq} batch {args.batch} vocab {args.vocab}; last loss {loss.item():.4f}; "
          f"peak allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB, reserved {torch.cuda.max_memory_reserved() / 2**20:.0f} MiB", flush=True)


def check(args):
    from safetensors.torch import load_file
    tensors = load_file(args.file)
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    shapes = {k: tuple(v.shape) for k, v in weights.items()}
    d = shapes["tok_emb.weight"][1]
    vocab, seq = shapes["tok_emb.weight"][0], shapes["pos_emb.weight"][0]
    layers = len({k.split(".")[1] for k in weights if k.startswith("blocks.")})
    hidden = shapes["blocks.0.mlp.w3.weight"][1]
    heads = args.heads
    model = TinyGPT(vocab, d, layers, heads, seq, hidden).cuda()
    model.load_state_dict(weights, strict=True)
    g = torch.Generator(device="cuda").manual_seed(0)
    x, y = counting_batch(256, seq, vocab, "cuda", g)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        logits = model(x)
    loss = F.cross_entropy(logits.float().view(-1, vocab), y.view(-1)).item()
    acc = (logits.argmax(-1) == y).float().mean().item()
    print(f"check {args.file}: load_file read {len(tensors)} tensors ({len(weights)} weights, "
          f"{len(tensors) - len(weights)} optimizer moments); load_state_dict(strict=True) ok; "
          f"PyTorch eval on 256 counting sequences: loss {loss:.4f}, accuracy {acc:.4f}")


def same(args):
    from safetensors.torch import load_file
    a, b = load_file(args.file), load_file(args.other)
    differing = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
    print(f"same {args.file} {args.other}: {len(a)} tensors, bit-identical: {not differing and len(a) == len(b)}"
          + (f"; differ: {differing[:5]}" if differing else ""))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["train", "bench", "check", "same"])
    p.add_argument("file", nargs="?")
    p.add_argument("other", nargs="?")
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--gpt2", action="store_true", help="d 768, 12 layers, 12 heads, seq 1024, batch 8, vocab 50304")
    p.add_argument("--warmup", type=int)
    p.add_argument("--timed", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if args.gpt2:
        args.d, args.layers, args.heads, args.seq, args.batch, args.vocab = 768, 12, 12, 1024, 8, 50304
    torch.backends.cuda.matmul.allow_tf32 = True
    {"train": train, "bench": bench, "check": check, "same": same}[args.mode](args)


if __name__ == "__main__":
    main()
