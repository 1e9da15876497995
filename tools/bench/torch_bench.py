"""PyTorch reference for `deno task bench` (bench/main.ts): the same Llama-style decoder as src/model/model.ts
(RMSNorm, RoPE in the rotate_half convention, grouped-query attention, SwiGLU MLP, untied LM head), trained
with the same step (forward, weighted next-token cross entropy, backward, clip to norm 1, AdamW) and decoded
greedily with a KV cache. Written for Debian's python3-torch (1.13, no scaled_dot_product_attention).

    /usr/bin/python3 tools/bench/torch_bench.py '{"task": "train", "model": {...}, "batch": 8, "seq": 128,
                                                 "reps": 5}'

prints one JSON line: {"samples": [tokens/s per repetition], "peak_rss_mb": ..., "threads": ...}.
Threads: torch's default (1 on the 2-vCPU machines, which is also its fastest setting there); override with
the "threads" field.
"""

import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F


class Config:
    def __init__(self, m):
        self.vocab = m["vocabSize"]
        self.d = m["hiddenSize"]
        self.layers = m["numLayers"]
        self.heads = m["numHeads"]
        self.kv_heads = m["numKvHeads"]
        self.ff = m["intermediateSize"]
        self.theta = m.get("ropeTheta", 10000.0)
        self.eps = m.get("rmsNormEps", 1e-5)
        self.head_dim = self.d // self.heads


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        kv = c.kv_heads * c.head_dim
        self.input_layernorm = RMSNorm(c.d, c.eps)
        self.q_proj = torch.nn.Linear(c.d, c.d, bias=False)
        self.k_proj = torch.nn.Linear(c.d, kv, bias=False)
        self.v_proj = torch.nn.Linear(c.d, kv, bias=False)
        self.o_proj = torch.nn.Linear(c.d, c.d, bias=False)
        self.post_attention_layernorm = RMSNorm(c.d, c.eps)
        self.gate_proj = torch.nn.Linear(c.d, c.ff, bias=False)
        self.up_proj = torch.nn.Linear(c.d, c.ff, bias=False)
        self.down_proj = torch.nn.Linear(c.ff, c.d, bias=False)

    def forward(self, x, cos, sin, cache=None, offset=0):
        c = self.c
        b, t, _ = x.shape
        a = self.input_layernorm(x)
        q = self.q_proj(a).view(b, t, c.heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(a).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(a).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            cache[0][:, :, offset : offset + t] = k
            cache[1][:, :, offset : offset + t] = v
            k = cache[0][:, :, : offset + t]
            v = cache[1][:, :, : offset + t]
        group = c.heads // c.kv_heads
        if group > 1:
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(c.head_dim)
        tk = k.shape[2]
        if t > 1:
            mask = torch.ones(t, tk, dtype=torch.bool).tril(diagonal=tk - t)
            scores = scores.masked_fill(~mask, float("-inf"))
        att = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, t, c.d)
        h = x + self.o_proj(att)
        m = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(m)) * self.up_proj(m))


class Llama(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = torch.nn.Embedding(c.vocab, c.d)
        self.layers = torch.nn.ModuleList([Layer(c) for _ in range(c.layers)])
        self.norm = RMSNorm(c.d, c.eps)
        self.lm_head = torch.nn.Linear(c.d, c.vocab, bias=False)
        for p in self.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.02)
        inv = 1.0 / (c.theta ** (torch.arange(0, c.head_dim, 2).float() / c.head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)

    def rope(self, positions):
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[None, None], emb.sin()[None, None]

    def forward(self, ids, caches=None, offset=0):
        t = ids.shape[1]
        cos, sin = self.rope(torch.arange(offset, offset + t))
        x = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, caches[i] if caches is not None else None, offset)
        return self.lm_head(self.norm(x))


def train(model, spec):
    b, t, reps = spec["batch"], spec["seq"], spec["reps"]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    ids = torch.randint(0, model.c.vocab, (b, t))

    def step():
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, model.c.vocab), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()  # warm-up
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        samples.append(b * t / (time.perf_counter() - t0))
    return samples


@torch.inference_mode()
def generate(model, prompts, new_tokens):
    c = model.c
    b, p = prompts.shape
    cap = p + new_tokens
    caches = [
        (torch.zeros(b, c.kv_heads, cap, c.head_dim), torch.zeros(b, c.kv_heads, cap, c.head_dim))
        for _ in range(c.layers)
    ]
    logits = model(prompts, caches, 0)[:, -1]
    out = []
    offset = p
    for n in range(new_tokens):
        nxt = logits.argmax(-1, keepdim=True)
        out.append(nxt)
        if n + 1 == new_tokens:
            break
        logits = model(nxt, caches, offset)[:, -1]
        offset += 1
    return torch.cat(out, dim=1)


def gen(model, spec):
    b, p, n, reps = spec["batch"], spec["prompt"], spec["newTokens"], spec["reps"]
    prompts = torch.randint(0, model.c.vocab, (b, p))
    generate(model, prompts[:, :4], 8)  # warm-up
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = generate(model, prompts, n)
        samples.append(out.numel() / (time.perf_counter() - t0))
    return samples


def main():
    spec = json.loads(sys.argv[1])
    if "threads" in spec:
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = Llama(Config(spec["model"]))
    samples = train(model, spec) if spec["task"] == "train" else gen(model, spec)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"samples": samples, "peak_rss_mb": peak_kb / 1024, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
