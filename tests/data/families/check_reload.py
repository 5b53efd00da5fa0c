#!/usr/bin/env python3
"""Reloads a `sparsa prune` checkpoint of a family fixture in transformers and checks its perplexity
against the one sparsa reports for the same checkpoint (issue #18: "pruned, saved, reloaded in
transformers with the same perplexity as sparsa reports").

Run where torch and transformers are installed (the GPU machine):

    sparsa prune --model tests/data/families/qwen3 --method wanda --sparsity 0.5 \\
        --calib tests/data/families/qwen3/reference.safetensors --calib-key tokens --out /tmp/q3
    sparsa eval --model /tmp/q3 --eval-tokens tests/data/families/qwen3/reference.safetensors \\
        --eval-key tokens --json > /tmp/q3.json
    python3 tests/data/families/check_reload.py /tmp/q3 tests/data/families/qwen3/reference.safetensors \\
        /tmp/q3.json [--tol 1e-5]

The perplexity is the one sparsa and the fixtures use: exp of the mean NLL of tokens 1..T-1 of each
window, computed here in float64 from transformers' fp32 logits. Also checks that every pruned linear
holds the zeros masks.safetensors names (packed bits, MSB first, 1 = pruned). Prints one line; exit 0 when the relative
difference is within --tol and the zeros are there, 1 otherwise.
"""
import argparse
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import load_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("reference", help="the fixture's reference.safetensors (tokens [W, T])")
    ap.add_argument("sparsa_json", help="what `sparsa eval --json` printed for the checkpoint")
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()

    model = transformers.AutoModelForCausalLM.from_pretrained(a.checkpoint, dtype=torch.float32).eval()
    tokens = load_file(a.reference)["tokens"].long()
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(tokens.shape[0]):
            ids = tokens[w : w + 1]
            logits = model(input_ids=ids).logits[0].double()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            nll -= logp.gather(1, ids[0, 1:].unsqueeze(1)).sum().item()
            count += ids.shape[1] - 1
    ppl = math.exp(nll / count)
    with open(a.sparsa_json, encoding="utf-8") as f:
        sparsa_ppl = json.loads(f.read().strip().splitlines()[-1])["ppl"]
    rel = abs(ppl - sparsa_ppl) / sparsa_ppl

    masks = load_file(os.path.join(a.checkpoint, "masks.safetensors"))
    params = dict(model.named_parameters())
    missing_zeros, pruned = 0, 0
    for name, mask in masks.items():
        weight = params.get(name.removesuffix(".mask") + ".weight")
        if weight is None:
            print(f"FAIL: masks.safetensors names {name}, which the reloaded model does not have")
            sys.exit(1)
        # U8 [rows, ceil(cols / 8)], packbits MSB first, 1 = pruned (docs/checkpoints.md)
        rows, cols = weight.shape
        shifts = torch.arange(7, -1, -1, dtype=torch.uint8)
        m = ((mask.unsqueeze(-1) >> shifts) & 1).reshape(rows, -1)[:, :cols].bool()
        pruned += int(m.sum())
        missing_zeros += int((weight.detach()[m] != 0).sum())
    ok = rel <= a.tol and missing_zeros == 0 and pruned > 0
    print(f"{'ok' if ok else 'FAIL'}: {os.path.basename(os.path.normpath(a.checkpoint))}: transformers {ppl:.9g}, "
          f"sparsa {sparsa_ppl:.9g}, relative difference {rel:.2e} (tol {a.tol:g}); {pruned} pruned weights, "
          f"{missing_zeros} not zero after reload; {type(model).__name__}, transformers {transformers.__version__}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
