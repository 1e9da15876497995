"""Writes tiny random Hugging Face checkpoints and their reference outputs into fixtures/goldens/<name>/.

Run from the repository root with Debian's PyTorch (apt-get install python3-torch):

    /usr/bin/python3 tools/reference/make_goldens.py

Each folder gets config.json, the weights (model.safetensors, or shards with
model.safetensors.index.json) and golden.json: two prompts of different lengths, the full logits of
each, log p(token_t | tokens_<t) for each token after the first, and greedy continuations computed by
recomputing the whole sequence every step. The Deno tests (tests/model_hf_goldens.test.ts) compare
against golden.json without Python. Weights are scaled up from HF's 0.02 initialisation so logits are
far from ties; the script refuses a checkpoint whose greedy steps come closer than MIN_MARGIN to a tie.
"""
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import reference_model  # noqa: E402
import safetensors_io  # noqa: E402

OUT = os.path.join("fixtures", "goldens")
VOCAB = 96
NEW_TOKENS = 8
MIN_MARGIN = 1e-2
PROMPTS = [[5, 17, 42, 3, 88, 61, 9], [70, 2, 33, 14]]


def llama_config(model_type, cls, **extra):
    cfg = {
        "architectures": [cls],
        "model_type": model_type,
        "vocab_size": VOCAB,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }
    cfg.update(extra)
    return cfg


def llama_shapes(cfg):
    d, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or d // heads
    q, kv, ff = heads * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    shapes = {"model.embed_tokens.weight": [VOCAB, d], "model.norm.weight": [d]}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": [d],
            p + "post_attention_layernorm.weight": [d],
            p + "self_attn.q_proj.weight": [q, d],
            p + "self_attn.k_proj.weight": [kv, d],
            p + "self_attn.v_proj.weight": [kv, d],
            p + "self_attn.o_proj.weight": [d, q],
            p + "mlp.gate_proj.weight": [ff, d],
            p + "mlp.up_proj.weight": [ff, d],
            p + "mlp.down_proj.weight": [d, ff],
        })
        if cfg["model_type"] == "qwen2":
            shapes.update({p + "self_attn.q_proj.bias": [q], p + "self_attn.k_proj.bias": [kv],
                           p + "self_attn.v_proj.bias": [kv]})
        if cfg["model_type"] == "qwen3":
            shapes.update({p + "self_attn.q_norm.weight": [hd], p + "self_attn.k_norm.weight": [hd]})
    if not cfg["tie_word_embeddings"]:
        shapes["lm_head.weight"] = [VOCAB, d]
    return shapes


def gpt2_config():
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": VOCAB,
        "n_positions": 64,
        "n_embd": 32,
        "n_layer": 2,
        "n_head": 4,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "tie_word_embeddings": True,
        "scale_attn_weights": True,
        "torch_dtype": "float32",
    }


def gpt2_shapes(cfg):
    # The original GPT-2 checkpoints' names: GPT2Model's, without the "transformer." prefix.
    d, ff = cfg["n_embd"], 4 * cfg["n_embd"]
    shapes = {"wte.weight": [VOCAB, d], "wpe.weight": [cfg["n_positions"], d], "ln_f.weight": [d],
              "ln_f.bias": [d]}
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        shapes.update({
            p + "ln_1.weight": [d], p + "ln_1.bias": [d], p + "ln_2.weight": [d], p + "ln_2.bias": [d],
            p + "attn.c_attn.weight": [d, 3 * d], p + "attn.c_attn.bias": [3 * d],
            p + "attn.c_proj.weight": [d, d], p + "attn.c_proj.bias": [d],
            p + "mlp.c_fc.weight": [d, ff], p + "mlp.c_fc.bias": [ff],
            p + "mlp.c_proj.weight": [ff, d], p + "mlp.c_proj.bias": [d],
        })
    return shapes


def random_weights(shapes, seed):
    """Matrices N(0, 2/fan_in), embeddings N(0, 0.25^2) (small, so that with tied embeddings the
    residual stream is not dominated by the input token's own row), norm weights 1 + N(0, 0.1^2),
    biases N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name in sorted(shapes):
        shape = shapes[name]
        r = torch.randn(shape, generator=g, dtype=torch.float32)
        if len(shape) == 1:
            w[name] = r * 0.1 if name.endswith(".bias") else 1.0 + r * 0.1
        elif "embed" in name or "wte" in name or "wpe" in name:
            w[name] = r * 0.25
        else:
            fan_in = shape[0] if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) else shape[1]
            w[name] = r * (2.0 / fan_in) ** 0.5
    return w


CASES = {
    # name: (config, shapes function, stored dtype, number of shards)
    "llama": (llama_config("llama", "LlamaForCausalLM"), llama_shapes, "F32", 1),
    "llama_gqa": (llama_config("llama", "LlamaForCausalLM", num_key_value_heads=2, rope_theta=500000.0,
                               rms_norm_eps=1e-5), llama_shapes, "F16", 2),
    "mistral": (llama_config("mistral", "MistralForCausalLM", num_key_value_heads=2, head_dim=16,
                             sliding_window=4096), llama_shapes, "BF16", 1),
    "qwen2": (llama_config("qwen2", "Qwen2ForCausalLM", num_key_value_heads=2, tie_word_embeddings=True,
                           use_sliding_window=False, sliding_window=32), llama_shapes, "F32", 1),
    "qwen3": (llama_config("qwen3", "Qwen3ForCausalLM", num_key_value_heads=2, head_dim=16,
                           tie_word_embeddings=True, attention_bias=False), llama_shapes, "F32", 1),
    "gpt2": (gpt2_config(), gpt2_shapes, "F32", 1),
}


def write_checkpoint(folder, cfg, weights, dtype, shards):
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if cfg["model_type"] == "gpt2":
        # The causal-mask buffers old GPT-2 checkpoints carry; readers must ignore them.
        n = cfg["n_positions"]
        extra = {f"h.{i}.attn.bias": torch.ones(n, n).tril().view(1, 1, n, n) for i in range(cfg["n_layer"])}
    else:
        extra = {}
    if shards == 1:
        safetensors_io.write(os.path.join(folder, "model.safetensors"), {**weights, **extra}, dtype,
                             {"format": "pt"})
        return
    names = sorted(weights)
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        safetensors_io.write(os.path.join(folder, file), {n: weights[n] for n in part}, dtype, {"format": "pt"})
        weight_map.update({n: file for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)


def main():
    torch.set_grad_enabled(False)
    for seed, (name, (cfg, shapes_of, dtype, shards)) in enumerate(sorted(CASES.items())):
        folder = os.path.join(OUT, name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for attempt in range(20):
            weights = random_weights(shapes_of(cfg), 1000 * seed + attempt)
            # The reference sees exactly what a reader of the stored dtype sees.
            seen = {k: safetensors_io.stored(v, dtype) for k, v in weights.items()}
            greedy = [reference_model.greedy(cfg, seen, p, NEW_TOKENS) for p in PROMPTS]
            margin = min(m for _, m in greedy)
            # Continuations that repeat one token would not catch much: ask for some variety too.
            varied = all(len(set(c)) >= 3 for c, _ in greedy)
            if margin >= MIN_MARGIN and varied:
                break
        else:
            raise SystemExit(f"{name}: no weights with greedy margin >= {MIN_MARGIN} and varied continuations")
        write_checkpoint(folder, cfg, weights, dtype, shards)
        # Check the files round-trip through the reader before trusting them.
        stored = {}
        for file in sorted(os.listdir(folder)):
            if file.endswith(".safetensors"):
                stored.update(safetensors_io.read(os.path.join(folder, file)))
        for k, v in seen.items():
            assert torch.equal(stored[k], v), k
        cases = []
        for prompt, (continuation, m) in zip(PROMPTS, greedy):
            lg = reference_model.logits(cfg, seen, torch.tensor([prompt]))[0]
            logp = torch.log_softmax(lg, dim=-1)
            cases.append({
                "ids": prompt,
                "logits": [[float(f"{x:.9g}") for x in row] for row in lg.tolist()],
                "logprobs": [None] + [float(logp[t - 1, prompt[t]]) for t in range(1, len(prompt))],
                "greedy": continuation,
                "greedy_margin": m,
            })
        golden = {"architecture": cfg["architectures"][0], "stored_dtype": dtype, "shards": shards,
                  "new_tokens": NEW_TOKENS, "torch": torch.__version__, "cases": cases}
        with open(os.path.join(folder, "golden.json"), "w") as f:
            json.dump(golden, f)
        print(f"{name}: dtype {dtype}, shards {shards}, greedy margin {margin:.3g}, "
              f"continuations {[c['greedy'] for c in cases]}")


if __name__ == "__main__":
    main()
