# Makes one small random-weight checkpoint per model family with transformers' fp32 logits and
# perplexity, for sparsa's family tests (issue #18). Run where torch and transformers are installed:
#   python3 tests/data/families/make_fixtures.py OUT_DIR [FAMILY ...]
# Each OUT_DIR/<family>/ holds config.json and model.safetensors (bf16 weights, as save_pretrained
# writes them), reference.safetensors (tokens [W, T] int64; logits [W, T, V] float32 computed in fp32
# from the bf16 weights; nll [W, T-1] float32) and reference.json (perplexity, the perplexity with
# the family's distinguishing feature switched off, versions, what the config exercises).
# The weights are scaled so that the logits are far from uniform and far from one-hot (mean entropy
# about 3 nats of log(512) = 6.24; reported).
import json, math, os, shutil, sys, tempfile, traceback

import torch
import transformers
from safetensors.torch import load_file, save_file

WINDOWS, TOKENS, VOCAB = 2, 64, 512
V5 = int(transformers.__version__.split(".")[0]) >= 5


def rope(theta, scaling=None):
    """The RoPE settings in the spelling of the installed transformers."""
    if V5:
        params = {"rope_type": "default", "rope_theta": theta}
        params.update(scaling or {})
        return {"rope_parameters": params}
    return {"rope_theta": theta, "rope_scaling": scaling}


LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 32}
COMMON = dict(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


def llama3():
    cfg = transformers.LlamaConfig(**COMMON, **rope(500000.0, LLAMA3_SCALING), rms_norm_eps=1e-5)
    off = transformers.LlamaConfig(**COMMON, **rope(500000.0), rms_norm_eps=1e-5)
    return cfg, off, "llama3 RoPE scaling (factor 8, original context 32 < 64-token windows), GQA 4/2"


def llama32():
    kw = dict(COMMON, head_dim=64, tie_word_embeddings=True)
    cfg = transformers.LlamaConfig(**kw, **rope(500000.0, LLAMA3_SCALING), rms_norm_eps=1e-5)
    off = transformers.LlamaConfig(**kw, **rope(500000.0), rms_norm_eps=1e-5)
    return cfg, off, "Llama-3.2 shape: tied embeddings, head_dim 64 != hidden/heads 32, llama3 RoPE scaling"


def mistral():
    cfg = transformers.MistralConfig(**COMMON, **rope(10000.0), sliding_window=16)
    off = transformers.MistralConfig(**COMMON, **rope(10000.0), sliding_window=None)
    return cfg, off, "sliding_window 16 < 64-token windows (a query sees itself and the 15 keys before it)"


def qwen2():
    kw = dict(COMMON, tie_word_embeddings=True, use_sliding_window=False)
    cfg = transformers.Qwen2Config(**kw, **rope(1000000.0))
    return cfg, None, "q/k/v biases, tied embeddings; feature off = the biases zeroed"


def qwen3():
    kw = dict(COMMON, head_dim=64, tie_word_embeddings=True, attention_bias=False, use_sliding_window=False)
    cfg = transformers.Qwen3Config(**kw, **rope(1000000.0))
    return cfg, None, "per-head RMSNorm of q and k before RoPE, head_dim 64 != 32; feature off = q/k norms removed"


def gemma3():
    kw = dict(COMMON, num_hidden_layers=4, head_dim=64, sliding_window=16, query_pre_attn_scalar=48,
              layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
              hidden_activation="gelu_pytorch_tanh", final_logit_softcapping=None, attn_logit_softcapping=None)
    if V5:
        rp = {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
              "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}
        cfg = transformers.Gemma3TextConfig(**kw, rope_parameters=rp)
        off_kw = dict(kw, sliding_window=4096)
        off = transformers.Gemma3TextConfig(**off_kw, rope_parameters=rp)
    else:
        extra = dict(rope_theta=1000000.0, rope_local_base_freq=10000.0,
                     rope_scaling={"rope_type": "linear", "factor": 8.0})
        cfg = transformers.Gemma3TextConfig(**kw, **extra)
        off = transformers.Gemma3TextConfig(**dict(kw, sliding_window=4096), **extra)
    return cfg, off, ("Gemma 3 text: embeddings x sqrt(hidden), (1 + w) RMSNorm, GeGLU tanh, q/k norms, "
                      "pre/post norms, sliding (16, theta 1e4) and global (linear x8, theta 1e6) layers, "
                      "query_pre_attn_scalar 48; feature off = no sliding window")


def opt350m():
    kw = dict(vocab_size=VOCAB, hidden_size=128, ffn_dim=256, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=256, word_embed_proj_dim=64, enable_bias=True)
    cfg = transformers.OPTConfig(**kw, do_layer_norm_before=False)
    off = transformers.OPTConfig(**kw, do_layer_norm_before=True)
    return cfg, off, "OPT-350m shape: post-LN and project_in/project_out (word_embed_proj_dim 64 != 128)"


FAMILIES = {"llama3": llama3, "llama32": llama32, "mistral": mistral, "qwen2": qwen2, "qwen3": qwen3,
            "gemma3": gemma3, "opt350m": opt350m}


def energize(model, seed):
    """Weights far from the init's near-uniform logits, rounded to bf16 (what the file holds)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and ("embed" in name or "lm_head" in name):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            elif p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.8 / math.sqrt(p.shape[1]))
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "gemma" in type(model).__name__.lower():  # Gemma's norms scale by (1 + w)
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.1)
            p.copy_(p.bfloat16().float())


def final_scale(model):
    """Sets the scale of the logits: the final norm's weight (or OPT-350m's project_out) times alpha."""
    inner = model.model
    if hasattr(inner, "decoder"):  # OPT
        d = inner.decoder
        params = [d.project_out.weight] if d.project_out is not None else [d.final_layer_norm.weight, d.final_layer_norm.bias]
    else:
        params = [inner.norm.weight]
    gemma = "gemma" in type(model).__name__.lower()
    saved = [p.detach().clone() for p in params]

    def apply(alpha):
        with torch.no_grad():
            for p, p0 in zip(params, saved):
                p.copy_((alpha * (1 + p0) - 1 if gemma else alpha * p0).bfloat16().float())
    return apply


def mean_entropy(logits):
    return -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1).mean().item()


def temper(model, tokens, target=3.0):
    """Scales the logits (bisection on the final scale) to a mean entropy near `target` nats:
    far from uniform (log V = 6.24) and far from one-hot."""
    apply = final_scale(model)
    lo, hi = -6.0, 3.0  # log2 alpha
    for _ in range(24):
        mid = (lo + hi) / 2
        apply(2.0 ** mid)
        if mean_entropy(run(model, tokens)[0]) > target:
            lo = mid
        else:
            hi = mid
    apply(2.0 ** ((lo + hi) / 2))


def run(model, tokens):
    with torch.no_grad():
        logits = model(input_ids=tokens).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    nll = -logp.gather(-1, tokens[:, 1:, None])[..., 0]
    return logits, nll, math.exp(nll.double().mean().item())


def build(cfg, seed):
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    energize(model, seed)
    return model


def switch_off(name, model, off_cfg, tokens, seed):
    """The perplexity with the family's feature switched off, on the same weights."""
    if name == "qwen2":
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("bias"):
                    p.zero_()
        return run(model, tokens)[2]
    if name == "qwen3":
        for layer in model.model.layers:
            layer.self_attn.q_norm = torch.nn.Identity()
            layer.self_attn.k_norm = torch.nn.Identity()
        return run(model, tokens)[2]
    other = build(off_cfg, seed)
    other.load_state_dict(model.state_dict(), strict=False)
    return run(other, tokens)[2]


def save_bf16(model, folder):
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        state = load_file(os.path.join(tmp, "model.safetensors"))
        save_file({k: v.bfloat16().contiguous() for k, v in state.items()},
                  os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        config = json.load(open(os.path.join(tmp, "config.json")))
    config["torch_dtype" if not V5 else "dtype"] = "bfloat16"
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)


def make(name, out, seed):
    cfg, off_cfg, what = FAMILIES[name]()
    model = build(cfg, seed)
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, VOCAB, (WINDOWS, TOKENS), generator=g)
    temper(model, tokens)
    logits, nll, ppl = run(model, tokens)
    folder = os.path.join(out, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    save_bf16(model, folder)
    back = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                             attn_implementation="eager").eval()
    logits_back, _, ppl_back = run(back, tokens)
    reload_diff = (logits_back - logits).abs().max().item()
    entropy = mean_entropy(logits)
    ppl_off = switch_off(name, model, off_cfg, tokens, seed) if off_cfg is not None or name in ("qwen2", "qwen3") else None
    save_file({"tokens": tokens.contiguous(), "logits": logits.contiguous(), "nll": nll.float().contiguous()},
              os.path.join(folder, "reference.safetensors"))
    info = {"family": name, "exercises": what, "windows": WINDOWS, "tokens_per_window": TOKENS,
            "perplexity": ppl, "perplexity_feature_off": ppl_off, "reload_max_abs_logit_diff": reload_diff,
            "mean_entropy_nats": entropy, "uniform_entropy_nats": math.log(VOCAB),
            "perplexity_definition": "exp(mean NLL of tokens 1..T-1 of every window, each from the tokens before it)",
            "model_class": type(model).__name__, "transformers": transformers.__version__,
            "torch": torch.__version__, "seed": seed}
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(info, f, indent=2)
    size = sum(os.path.getsize(os.path.join(folder, x)) for x in os.listdir(folder))
    print(f"{name}: ppl {ppl:.6f} (feature off {ppl_off}), entropy {entropy:.3f}/{math.log(VOCAB):.3f}, "
          f"reload diff {reload_diff:.2e}, {size / 1e6:.2f} MB")


def main():
    out = sys.argv[1]
    names = sys.argv[2:] or list(FAMILIES)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    failed = 0
    for name in names:
        try:
            make(name, out, 1000 + list(FAMILIES).index(name))
        except Exception:
            failed += 1
            print(f"{name}: FAILED")
            traceback.print_exc()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
