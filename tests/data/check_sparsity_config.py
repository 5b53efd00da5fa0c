#!/usr/bin/env python3
"""Loads a `sparsa prune` checkpoint with transformers and prints its config's sparsity entries.

Not run in CI (it needs torch, transformers and compressed-tensors). On a machine that has them:

    python3 tests/data/check_sparsity_config.py PRUNED_DIR [--tokens 16]

It checks what docs/checkpoints.md promises: config.json is valid JSON whose
"quantization_config" is compressed-tensors' sparsity-only form (llm-compressor's), transformers
loads the checkpoint with it, the pruned linears hold exactly the zeros masks.safetensors names
(where a weight is not zero by itself), and global_sparsity is the fraction of zero parameters.
Exit 0 when every check holds; the failing check's message and exit 1 otherwise.
"""
import argparse
import json
import os
import sys


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a `sparsa prune --out` folder")
    parser.add_argument("--tokens", type=int, default=16, help="tokens of a forward pass to run (0: none)")
    args = parser.parse_args()

    with open(os.path.join(args.checkpoint, "config.json"), "rb") as f:
        config = json.loads(f.read())
    q = config.get("quantization_config")
    if not isinstance(q, dict) or q.get("quant_method") != "compressed-tensors":
        fail(f"config.json has no compressed-tensors quantization_config: {q!r}")
    sparsity = q.get("sparsity_config")
    print("quantization_config:", json.dumps(q, indent=2, sort_keys=True))

    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(args.checkpoint, torch_dtype=torch.float32)
    loaded = getattr(model.config, "quantization_config", None)
    if loaded is None:
        fail("transformers dropped the quantization_config")
    as_dict = loaded if isinstance(loaded, dict) else loaded.to_dict()
    print("transformers config.quantization_config:", json.dumps(as_dict, indent=2, sort_keys=True, default=str))
    loaded_sparsity = as_dict.get("sparsity_config") or {}
    for key in ("format", "sparsity_structure", "targets", "ignore"):
        if loaded_sparsity.get(key) != sparsity.get(key):
            fail(f"sparsity_config[{key!r}] is {loaded_sparsity.get(key)!r} after loading, {sparsity.get(key)!r} in the file")

    params = list(model.parameters())
    zeros = sum(int((p == 0).sum()) for p in params)
    total = sum(p.numel() for p in params)
    print(f"zero parameters: {zeros} / {total} = {zeros / total:.6f}; global_sparsity {sparsity['global_sparsity']:.6f}")
    if abs(zeros / total - sparsity["global_sparsity"]) > 1e-6:
        fail("global_sparsity is not the fraction of zero parameters")

    from safetensors import safe_open
    import numpy as np

    modules = dict(model.named_modules())
    with safe_open(os.path.join(args.checkpoint, "masks.safetensors"), "np") as masks:
        for key in masks.keys():
            name = key[: -len(".mask")]
            weight = modules[name].weight.detach().numpy()
            pruned = np.unpackbits(masks.get_tensor(key), axis=1)[:, : weight.shape[1]].astype(bool)
            if np.any(weight[pruned] != 0):
                fail(f"{name}: a weight the mask prunes is not zero")
    print("every masked weight is zero")

    if args.tokens > 0:
        ids = torch.arange(args.tokens).unsqueeze(0) % model.config.vocab_size
        with torch.no_grad():
            logits = model(ids).logits
        if not torch.isfinite(logits).all():
            fail("the forward pass gave non-finite logits")
        print(f"forward pass over {args.tokens} tokens: finite logits {tuple(logits.shape)}")
    print("OK")


if __name__ == "__main__":
    main()
