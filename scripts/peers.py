# Peer baselines: PyTorch SDPA (cuDNN and FlashAttention-2 backends) and FlexAttention on
# the Sparse Transformer patterns. Prints ms and effective TFLOP/s, counting only the
# allowed score entries: 4*B*nnz*D forward, 3.5x that for forward+backward.
# Our copy of shared/bench/peers.py, extended: an element type per case (fp16, bf16), head dim 128 cases at 8k and
# 16k, and FlexAttention at its block sizes 128 and 64 on the block-sparse patterns (32 left out: shared/bench/README.md), reporting
# its best. PEERS_BUDGET_S (default 240) stops trying extra block sizes once that much time has gone.
import json, os, time
import torch
import torch._dynamo
from torch.nn.attention import sdpa_kernel, SDPBackend
from torch.nn.attention.flex_attention import flex_attention, create_block_mask
from triton.testing import do_bench
torch._dynamo.config.recompile_limit = 256
torch.manual_seed(0)
dev = "cuda"
flex = torch.compile(flex_attention, dynamic=False)
started = time.time()
budget = float(os.environ.get("PEERS_BUDGET_S", "240"))

def layout_mask(mode, n, local=None, block=32, nverts=None, vsize=None, heads=1):
    # token-level mask function (b,h,q,k)->bool matching sparse_attention's modes
    if mode == "all":
        return lambda b, h, q, k: q >= k
    if mode == "local":
        return lambda b, h, q, k: (q >= k) & (q - k < local)
    if mode == "strided":
        return lambda b, h, q, k: (q >= k) & ((q - k) % local == 0)
    if mode == "fixed":
        stride = local // block
        def f(b, h, q, k):
            qb, kb = q // block, k // block
            sub = (stride - 1) - (h % nverts) * vsize  # vertsize=1 columns
            vert = (kb % stride) == sub
            same = (qb // stride) == (kb // stride)
            return (qb >= kb) & (vert | same) & ((qb != kb) | (q >= k))
        return f
    raise ValueError(mode)

def bench(fn):
    return do_bench(fn, warmup=50, rep=300, return_mode="median")

def flex_times(q, k, v, do, mm, mode, H, N, block_size):
    bm = create_block_mask(mm, B=None, H=H if mode == "fixed" else None, Q_LEN=N, KV_LEN=N, device=dev, BLOCK_SIZE=block_size)
    options = None if block_size == 128 else {"BLOCK_M": block_size, "BLOCK_N": block_size, "BLOCK_M1": block_size, "BLOCK_N1": block_size, "BLOCK_M2": block_size, "BLOCK_N2": block_size}
    run = lambda: flex(q, k, v, block_mask=bm, kernel_options=options)
    run()
    return bench(run), bench(lambda: torch.autograd.grad(run(), (q, k, v), do))

def run(name, B, H, N, D, mode, dtype="fp16", **kw):
    torch_dtype = torch.float16 if dtype == "fp16" else torch.bfloat16
    q, k, v = (torch.randn(B, H, N, D, device=dev, dtype=torch_dtype, requires_grad=True) for _ in range(3))
    mm = layout_mask(mode, N, **kw)
    # nnz entries
    qi = torch.arange(N, device=dev)
    nnz = 0
    for h in range(H if mode == "fixed" else 1):
        m = mm(0, torch.tensor(h, device=dev), qi[:, None], qi[None, :])
        nnz += m.sum().item()
    if mode != "fixed": nnz *= H
    flops_f = 4.0 * B * nnz * D
    do = torch.randn_like(q)
    r = dict(case=name, B=B, H=H, N=N, D=D, dtype=dtype, density=nnz / (H * N * N))
    best = None
    for block_size in (128, 64) if mode != "all" else (128,):
        if block_size != 128 and time.time() - started > budget:
            r[f"flex{block_size}"] = "skipped: time budget"
            continue
        try:
            tf, tfb = flex_times(q, k, v, do, mm, mode, H, N, block_size)
        except Exception as e:  # a block size Flex's kernels do not compile for
            r[f"flex{block_size}"] = f"failed: {type(e).__name__}"
            continue
        r[f"flex{block_size}_fwd_ms"], r[f"flex{block_size}_fwdbwd_ms"] = tf, tfb
        if best is None or tf + tfb < best[0] + best[1]:
            best = (tf, tfb, block_size)
    tf, tfb, r["flex_block"] = best
    r.update(flex_fwd_ms=tf, flex_fwd_tflops=flops_f / tf / 1e9, flex_fwdbwd_ms=tfb, flex_fwdbwd_tflops=3.5 * flops_f / tfb / 1e9)
    if mode == "all":
        sd = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        for name, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("fa2", SDPBackend.FLASH_ATTENTION)):
            with sdpa_kernel(be):
                r[f"sdpa_{name}_fwd_ms"] = bench(sd)
                r[f"sdpa_{name}_fwdbwd_ms"] = bench(lambda: torch.autograd.grad(sd(), (q, k, v), do))
                r[f"sdpa_{name}_fwd_tflops"] = flops_f / r[f"sdpa_{name}_fwd_ms"] / 1e9
    print(json.dumps(r), flush=True)

if __name__ == "__main__":
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    run("seed-example-all", 4, 4, 1024, 64, "all")
    run("all-4k", 4, 16, 4096, 64, "all")
    run("local-4k", 4, 16, 4096, 64, "local", local=256)
    run("strided-4k", 4, 16, 4096, 64, "strided", local=64)
    run("fixed-4k", 4, 16, 4096, 64, "fixed", local=128, block=32, nverts=4, vsize=1)
    run("fixed-16k", 1, 16, 16384, 64, "fixed", local=128, block=32, nverts=4, vsize=1)
    run("all-8k-d128-bf16", 2, 16, 8192, 128, "all", dtype="bf16")
    run("all-16k-d128-bf16", 1, 16, 16384, 128, "all", dtype="bf16")
    run("local-8k-d128-bf16", 2, 16, 8192, 128, "local", dtype="bf16", local=256)
    run("strided-8k-d128-bf16", 2, 16, 8192, 128, "strided", dtype="bf16", local=64)
    run("fixed-8k-d128-bf16", 2, 16, 8192, 128, "fixed", dtype="bf16", local=128, block=32, nverts=4, vsize=1)
