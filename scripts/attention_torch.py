#!/usr/bin/env python3
"""PyTorch's side of the GPU harness (runs on the GPU machine, next to the published XFormers.Bench).

  attention_torch.py bench --out DIR   time torch SDPA's FLASH_ATTENTION and EFFICIENT_ATTENTION (xFormers' cutlass
                                       kernel) backends on the harness's shapes; writes DIR/torch.csv
  attention_torch.py table --out DIR   merge DIR/ours.csv and DIR/torch.csv into a markdown table with our ratios
  attention_torch.py decode --out DIR  SDPA flash and cuDNN decoding on the shapes of the decode table; DIR/torch-decode.csv
  attention_torch.py check FILE        recompute a .safetensors dump of XFormers.Bench in float64 and compare
"""
import argparse
import csv
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def cases():
    """The throughput cases of bench/XFormers.Bench/Benchmarks.cs: (name, B, M, Hq, Hkv, K, causal, alibi)."""
    for k in (64, 128):
        for causal in (False, True):
            yield (f"B4-H16-M4096{'-causal' if causal else ''}", 4, 4096, 16, 16, k, causal, False)
        yield ("gqa-16/4-causal", 4, 4096, 16, 4, k, True, False)
        yield ("alibi-causal", 4, 4096, 16, 16, k, True, True)
    for causal in (False, True):
        yield (f"B4-H16-M4096{'-causal' if causal else ''}", 4, 4096, 16, 16, 256, causal, False)


def gate_cases():
    """The forward gate's cases of bench/XFormers.Bench/Benchmarks.cs GateCases: (name, B, M, H, K, causal)."""
    for k in (64, 128, 256):
        for causal in (False, True):
            yield (f"B4-H16-M4096{'-causal' if causal else ''}", 4, 4096, 16, k, causal)
    for m in (512, 1024, 2048, 4096, 8192, 16384):
        yield (f"B2-H8-M{m}", 2, m, 8, 64, False)
    yield ("B1-H16-M16384-causal", 1, 16384, 16, 128, True)
    yield ("B1-H16-M16384-causal", 1, 16384, 16, 64, True)


BACKENDS = (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION))


def gate(out):
    """Forward only, fp16 and bf16: flash, efficient and cuDNN on the gate's cases; DIR/torch-gate.csv."""
    torch.manual_seed(0)
    rows = []
    for dname, dtype in DTYPES.items():
        for name, b, m, h, k, causal in gate_cases():
            q, kk, v = (torch.randn(b, m, h, k, device="cuda", dtype=dtype).transpose(1, 2) for _ in range(3))
            fl = flops(b, m, h, k, causal)
            for backend_name, backend in BACKENDS:
                def fwd():
                    with sdpa_kernel(backend):
                        return F.scaled_dot_product_attention(q, kk, v, is_causal=causal)
                try:
                    with torch.no_grad():
                        ms = median_ms(fwd)
                    rows.append((name, dname, k, int(causal), "fwd", backend_name, f"{ms:.4f}", f"{fl / ms / 1e9:.1f}"))
                    print(f"{name:<22} {dname} K{k:<3} fwd {backend_name:<9} {ms:8.3f} ms {fl / ms / 1e9:6.1f} TFLOP/s")
                except Exception as e:
                    rows.append((name, dname, k, int(causal), "fwd", backend_name, "", ""))
                    print(f"{name} {dname} K{k} {backend_name}: n/a ({type(e).__name__})")
            del q, kk, v
            torch.cuda.empty_cache()
    with open(os.path.join(out, "torch-gate.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "dtype", "k", "causal", "mode", "backend", "ms", "tflops"])
        w.writerows(rows)


def gate_table(out):
    ours = list(csv.DictReader(open(os.path.join(out, "ours-gate.csv"))))
    theirs = {}
    for r in csv.DictReader(open(os.path.join(out, "torch-gate.csv"))):
        theirs[(r["name"], r["dtype"], r["k"], r["backend"])] = r["tflops"]
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print()
    print("| case | dtype | K | ours ms | ours TFLOP/s | flash | efficient | cuDNN | ours/flash | ours/cuDNN |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in ours:
        key = (r["name"], r["dtype"], r["k"])
        fl, ef, cu = (theirs.get(key + (b,), "") for b in ("flash", "efficient", "cudnn"))
        mine = float(r["tflops"])
        ratio = lambda t: f"{mine / float(t):.2f}" if t else "n/a"
        print(f"| {r['name']} | {r['dtype']} | {r['k']} | {float(r['ms']):.3f} | {mine:.1f} | {fl or 'n/a'} | {ef or 'n/a'} | {cu or 'n/a'} | {ratio(fl)} | {ratio(cu)} |")


def flops(b, m, h, k, causal):
    return 4 * b * h * m * m * k * (0.5 if causal else 1)


def median_ms(fn):
    import triton.testing
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


def alibi_bias(h, m, dtype, device):
    # The ALiBi paper's slopes for a power-of-two head count, causal (-inf above the diagonal), materialized.
    slopes = torch.tensor([2 ** (-8 * (i + 1) / h) for i in range(h)], device=device, dtype=torch.float32)
    pos = torch.arange(m, device=device)
    rel = (pos[None, :] - pos[:, None]).float()
    bias = slopes[:, None, None] * rel[None]
    bias = bias.masked_fill(pos[None, :] > pos[:, None], float("-inf"))
    return bias[None].to(dtype)


def bench(out):
    torch.manual_seed(0)
    rows = []
    for dname, dtype in DTYPES.items():
        for name, b, m, hq, hkv, k, causal, alibi in cases():
            if dname == "bf16" and not name.startswith("B4-H16-M4096"):
                continue
            # BMHK in memory, as xFormers and our kernels take it; SDPA sees the [B, H, M, K] view.
            q = torch.randn(b, m, hq, k, device="cuda", dtype=dtype).transpose(1, 2).requires_grad_()
            kk = torch.randn(b, m, hkv, k, device="cuda", dtype=dtype).transpose(1, 2).requires_grad_()
            v = torch.randn(b, m, hkv, k, device="cuda", dtype=dtype).transpose(1, 2).requires_grad_()
            do = torch.randn(b, m, hq, k, device="cuda", dtype=dtype).transpose(1, 2)
            mask = alibi_bias(hq, m, dtype, "cuda") if alibi else None
            fl = flops(b, m, hq, k, causal)
            for backend_name, backend in BACKENDS:
                kwargs = dict(attn_mask=mask, is_causal=causal and mask is None, enable_gqa=hkv != hq)

                def fwd():
                    with sdpa_kernel(backend):
                        return F.scaled_dot_product_attention(q, kk, v, **kwargs)

                def fwd_bwd():
                    o = fwd()
                    torch.autograd.grad(o, (q, kk, v), do)

                for mode, fn, mult in (("fwd", fwd, 1.0), ("fwd+bwd", fwd_bwd, 3.5)):
                    try:
                        with torch.no_grad() if mode == "fwd" else torch.enable_grad():
                            ms = median_ms(fn)
                        rows.append((name, dname, k, int(causal), mode, backend_name, f"{ms:.3f}", f"{mult * fl / ms / 1e9:.1f}"))
                    except Exception as e:  # a backend that does not take this case (flash with a tensor bias, say)
                        rows.append((name, dname, k, int(causal), mode, backend_name, "", "", ))
                        print(f"{name} {dname} K{k} {mode} {backend_name}: n/a ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
                    else:
                        print(f"{name:<22} {dname} K{k:<3} {mode:<7} {backend_name:<9} {ms:8.3f} ms {mult * fl / ms / 1e9:6.1f} TFLOP/s")
            del q, kk, v, do, mask
            torch.cuda.empty_cache()
    with open(os.path.join(out, "torch.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "dtype", "k", "causal", "mode", "backend", "ms", "tflops"])
        w.writerows(rows)


def table(out):
    ours = list(csv.DictReader(open(os.path.join(out, "ours.csv"))))
    theirs = {}
    path = os.path.join(out, "torch.csv")
    if os.path.exists(path):
        for r in csv.DictReader(open(path)):
            theirs[(r["name"], r["dtype"], r["k"], r["mode"], r["backend"])] = r["tflops"]
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print()
    print("| case | dtype | K | mode | ours ms | ours TFLOP/s | flash TFLOP/s | efficient TFLOP/s | cuDNN TFLOP/s | ours/flash | ours/cuDNN |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in ours:
        if r["name"].startswith("seed-"):
            continue
        key = (r["name"], r["dtype"], r["k"], r["mode"])
        fl, ef, cu = (theirs.get(key + (b,), "") for b in ("flash", "efficient", "cudnn"))
        mine = float(r["tflops"])
        ratio = lambda t: f"{mine / float(t):.2f}" if t else "n/a"
        print(f"| {r['name']} | {r['dtype']} | {r['k']} | {r['mode']} | {float(r['ms']):.2f} | {mine:.1f} | {fl or 'n/a'} | {ef or 'n/a'} | {cu or 'n/a'} | {ratio(fl)} | {ratio(cu)} |")


def check(path):
    from safetensors.torch import load_file
    from safetensors import safe_open
    t = load_file(path)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    scale = float(meta["scale"])
    print(f"loaded {path}: " + ", ".join(f"{n} {tuple(x.shape)} {x.dtype}" for n, x in t.items()))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    q, k, v, bias, do = (t[n].to(dev, torch.float64) for n in ("q", "k", "v", "bias", "dO"))
    q, k, v = (x.transpose(1, 2).requires_grad_() for x in (q, k, v))
    bias.requires_grad_()
    s = q @ k.transpose(-1, -2) * scale + bias
    m = s.shape[-1]
    causal = torch.ones(s.shape[-2], m, dtype=torch.bool, device=dev).tril()
    s = s.masked_fill(~causal, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    o = torch.softmax(s, dim=-1) @ v
    dq, dk, dv, db = torch.autograd.grad(o, (q, k, v, bias), do.transpose(1, 2))
    expected = {"O": o.transpose(1, 2), "LSE": lse, "dQ": dq.transpose(1, 2), "dK": dk.transpose(1, 2), "dV": dv.transpose(1, 2), "dBias": db}
    tolerance = 8 * 2.0 ** -11
    worst = 0.0
    for name, e in expected.items():
        a = t[name].to(dev, torch.float64)
        finite = torch.isfinite(e)
        same_inf = (a == e) | finite
        err = (a - e).abs()[finite].max().item() / max(1.0, e[finite].abs().max().item())
        if not bool(same_inf.all()) or bool(torch.isnan(a).any()):
            err = math.inf
        worst = max(worst, err)
        print(f"{name:6} scaled error {err:.2e}")
    print(f"dump check: {'PASS' if worst <= tolerance else 'FAIL'} (worst {worst:.2e}, tolerance {tolerance:.2e})")
    return 0 if worst <= tolerance else 1


def flex(out):
    """FlexAttention (torch.compile(flex_attention)) on the mods harness's cases, bf16, block masks built outside the timing."""
    from torch.nn.attention.flex_attention import flex_attention, create_block_mask
    import torch._dynamo
    # Each case's mods are new functions, and each one a recompilation: past the default limit (8) torch falls back to the
    # unfused implementation, which would time something else.
    torch._dynamo.config.cache_size_limit = 256
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = 256
    compiled = torch.compile(flex_attention)
    dev = "cuda"
    h = 16
    slopes = torch.tensor([2 ** (-8 * (i + 1) / h) for i in range(h)], device=dev, dtype=torch.float32)

    def causal(b, hh, q, kv):
        return q >= kv

    cases = []
    for k in (64, 128):
        cases += [
            ("causal", k, 4, 4096, None, causal),
            ("softcap", k, 4, 4096, lambda s, b, hh, q, kv: 30 * torch.tanh(s / 30), causal),
            ("alibi", k, 4, 4096, lambda s, b, hh, q, kv: s + slopes[hh] * (kv - q), causal),
            ("window", k, 4, 4096, None, lambda b, hh, q, kv: (q >= kv) & (q - kv < 1024)),
            ("prefix", k, 4, 4096, None, lambda b, hh, q, kv: (kv < 1024) | (q >= kv)),
        ]
    cases.append(("document", 64, 1, 16384, None, None))
    rows = []
    for name, k, b, m, score_mod, mask_mod in cases:
        torch.manual_seed(0)
        q, kk, v = (torch.randn(b, h, m, k, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        if name == "document":
            doc = (torch.arange(m, device=dev) * 8 // m)
            mask_mod = lambda bb, hh, qi, kv: (doc[qi] == doc[kv]) & (qi >= kv)
        block = create_block_mask(mask_mod, None, None, m, m, device=dev)
        fwd = lambda: compiled(q, kk, v, score_mod=score_mod, block_mask=block)
        o = fwd()
        grad = torch.randn_like(o)
        def both():
            out_ = compiled(q, kk, v, score_mod=score_mod, block_mask=block)
            out_.backward(grad)
        with torch.no_grad():
            f_ms = median_ms(lambda: compiled(q, kk, v, score_mod=score_mod, block_mask=block))
        b_ms = median_ms(both)
        rows.append(f"{name},{k},{b},{h},{m},flex,{f_ms:.3f},{b_ms:.3f}")
        print("flex " + rows[-1], flush=True)
    with open(os.path.join(out, "flex.csv"), "w") as f:
        f.write("name,k,batch,heads,tokens,backend,fwd_ms,fwdbwd_ms\n" + "\n".join(rows) + "\n")


def flex_local(out):
    """FlexAttention with a sliding-window block mask (window 1024) and with a causal one, B1 H16 M16384, bf16: local.csv's shapes."""
    from torch.nn.attention.flex_attention import flex_attention, create_block_mask
    compiled = torch.compile(flex_attention)
    dev, b, h, m, window = "cuda", 1, 16, 16384, 1024
    masks = {
        "local": lambda bb, hh, q, kv: (q >= kv) & (q - kv < window),
        "causal": lambda bb, hh, q, kv: q >= kv,
    }
    rows = []
    for k in (64, 128):
        for name, mask_mod in masks.items():
            torch.manual_seed(0)
            q, kk, v = (torch.randn(b, h, m, k, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
            block = create_block_mask(mask_mod, None, None, m, m, device=dev)
            o = compiled(q, kk, v, block_mask=block)
            grad = torch.randn_like(o)

            def both():
                compiled(q, kk, v, block_mask=block).backward(grad)
            with torch.no_grad():
                f_ms = median_ms(lambda: compiled(q, kk, v, block_mask=block))
            b_ms = median_ms(both)
            rows.append(f"{name},{k},{b},{h},{m},{window if name == 'local' else m},flex,{f_ms:.3f},{b_ms:.3f}")
            print("flex " + rows[-1], flush=True)
    with open(os.path.join(out, "flex_local.csv"), "w") as f:
        f.write("name,k,batch,heads,tokens,window,backend,fwd_ms,fwdbwd_ms\n" + "\n".join(rows) + "\n")


def decode(out):
    """SDPA decoding (one query a sequence over a full cache, GQA 32/8, K128), flash and cuDNN, the shapes of
    bench/XFormers.Bench/Decode.cs; GB/s counts the cache's K and V bytes once, as ours does. GQA goes through
    enable_gqa where the backend takes it, else through K/V expanded to 32 heads beforehand (outside the timing; the
    row says which). DIR/torch-decode.csv."""
    torch.manual_seed(0)
    hq, hkv, k = 32, 8, 128
    rows = []
    for b, cache in ((64, 8192), (8, 32768)):
        for dname, dtype in DTYPES.items():
            q = torch.randn(b, hq, 1, k, device="cuda", dtype=dtype)
            kk, v = (torch.randn(b, hkv, cache, k, device="cuda", dtype=dtype) for _ in range(2))
            nbytes = 2 * b * cache * hkv * k * kk.element_size()
            for backend_name, backend in BACKENDS:
                for gqa in ("enable_gqa", "expanded"):
                    if gqa == "enable_gqa":
                        args, kwargs = (q, kk, v), {"enable_gqa": True}
                    else:
                        args, kwargs = (q, kk.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)), {}

                    def fwd():
                        with sdpa_kernel(backend):
                            return F.scaled_dot_product_attention(*args, **kwargs)
                    try:
                        with torch.no_grad():
                            ms = median_ms(fwd)
                    except RuntimeError as e:
                        print(f"decode b{b} c{cache} {dname} {backend_name} {gqa}: unsupported ({str(e).splitlines()[0][:100]})", flush=True)
                        continue
                    rows.append(f"decode-b{b}-c{cache},{dname},{backend_name},{gqa},{ms:.4f},{nbytes / ms / 1e6:.1f}")
                    print("torch " + rows[-1], flush=True)
                    break
                del args
            del q, kk, v
    with open(os.path.join(out, "torch-decode.csv"), "w") as f:
        f.write("name,dtype,backend,gqa,ms,gbps\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["bench", "table", "check", "gate", "gate-table", "flex", "flex-local", "decode"])
    parser.add_argument("file", nargs="?")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    if args.command == "bench":
        bench(args.out)
    elif args.command == "table":
        table(args.out)
    elif args.command == "gate":
        gate(args.out)
    elif args.command == "gate-table":
        gate_table(args.out)
    elif args.command == "flex":
        flex(args.out)
    elif args.command == "flex-local":
        flex_local(args.out)
    elif args.command == "decode":
        decode(args.out)
    else:
        sys.exit(check(args.file))
