"""Independent PyTorch forward passes following Hugging Face transformers' modeling code semantics
(LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, GPT2LMHeadModel), for the
golden tests. transformers is not installed here; this is written from the published architectures:

- Llama family: pre-norm RMSNorm (x * rsqrt(mean(x^2) + eps) * w), rotary embeddings in the
  rotate_half convention (inv_freq = 1 / theta^(2j / head_dim), cos/sin of [freqs, freqs]), grouped-
  query attention (kv head g serves query heads g*group .. g*group+group-1), causal softmax with
  1/sqrt(head_dim) scaling, o_proj, then down(silu(gate(x)) * up(x)). Qwen2: q/k/v_proj have biases.
  Qwen3: RMSNorm over each head of q and k (q_norm, k_norm) before rotary. Mistral: Llama's numerics
  (its sliding window is wider than every sequence used here).
- GPT-2: wte + wpe, pre-norm LayerNorm with bias, fused c_attn as Conv1D (x @ W + b, W [in, out]),
  attention scaled by 1/sqrt(head_dim), c_proj, MLP c_fc -> gelu_new (tanh approximation) -> c_proj,
  final ln_f, LM head tied to wte.

Everything is computed in float64 from the float32 weights, so the goldens are the exact function of
the stored weights up to float64 rounding.
"""
import math

import torch

DT = torch.float64


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rope(x, positions, theta):
    # x: [B, H, T, hd]
    hd = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=DT) / hd))
    freqs = positions.to(DT)[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def causal_softmax_attention(q, k, v):
    # q [B, H, T, hd], k/v [B, H, T, hd]
    t = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def llama_logits(cfg, w, ids):
    """cfg: the HF config.json dict; w: name -> tensor; ids: LongTensor [B, T]."""
    arch = cfg["model_type"]
    W = {k: v.to(DT) for k, v in w.items()}
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    hd = cfg.get("head_dim") or d // heads
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta", 10000.0)
    b, t = ids.shape
    pos = torch.arange(t)
    x = W["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = rms_norm(x, W[p + "input_layernorm.weight"], eps)

        def proj(name, n):
            y = a @ W[p + f"self_attn.{name}_proj.weight"].T
            if arch == "qwen2":
                y = y + W[p + f"self_attn.{name}_proj.bias"]
            y = y.view(b, t, n, hd)
            if arch == "qwen3" and name in ("q", "k"):
                y = rms_norm(y, W[p + f"self_attn.{name}_norm.weight"], eps)
            return y.transpose(1, 2)

        q = rope(proj("q", heads), pos, theta)
        k = rope(proj("k", kv), pos, theta)
        v = proj("v", kv)
        k = k.repeat_interleave(heads // kv, dim=1)
        v = v.repeat_interleave(heads // kv, dim=1)
        att = causal_softmax_attention(q, k, v).transpose(1, 2).reshape(b, t, heads * hd)
        x = x + att @ W[p + "self_attn.o_proj.weight"].T
        m = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        gate = m @ W[p + "mlp.gate_proj.weight"].T
        up = m @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T


def layer_norm(x, w, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + bias


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_logits(cfg, w, ids):
    # Stored names may lack the "transformer." prefix (as in the original GPT-2 checkpoints).
    W = {}
    for k, v in w.items():
        W[k if k.startswith("transformer.") or k == "lm_head.weight" else "transformer." + k] = v.to(DT)
    d = cfg["n_embd"]
    heads = cfg["n_head"]
    hd = d // heads
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    b, t = ids.shape
    x = W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][torch.arange(t)][None]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        a = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        qkv = a @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(d, dim=-1)
        split = lambda y: y.view(b, t, heads, hd).transpose(1, 2)  # noqa: E731
        att = causal_softmax_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(b, t, d)
        x = x + att @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        m = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        h = gelu_new(m @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
        x = x + h @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = layer_norm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    head = W["transformer.wte.weight"] if cfg.get("tie_word_embeddings", True) else W["lm_head.weight"]
    return x @ head.T


def logits(cfg, w, ids):
    return gpt2_logits(cfg, w, ids) if cfg["model_type"] == "gpt2" else llama_logits(cfg, w, ids)


def greedy(cfg, w, prompt, n):
    """n greedy tokens after `prompt`, recomputing the whole sequence each step; also the smallest gap
    between the best and second-best logit seen (a tiny gap would make the golden fragile)."""
    seq = list(prompt)
    margin = float("inf")
    for _ in range(n):
        last = logits(cfg, w, torch.tensor([seq]))[0, -1]
        top = torch.topk(last, 2).values
        margin = min(margin, float(top[0] - top[1]))
        seq.append(int(torch.argmax(last)))
    return seq[len(prompt):], margin
