#!/usr/bin/env python3
"""Checks `sparsa eval --task` against transformers: recomputes every choice's log-likelihood with
the Hugging Face model and compares it with sparsa's --json output (default tolerance 1e-4).

Run on a machine with torch + transformers (the GPU machine; CPU works too, slower):

    sparsa eval --model models/tiny-llama-15m --task data/tasks/persuasion-next.jsonl --json > sparsa.json
    python3 tests/data/tasks/check_transformers.py --model models/tiny-llama-15m \
        --task data/tasks/persuasion-next.jsonl --sparsa sparsa.json [--device cuda] [--tol 1e-4]

The pair is tokenized as lm-evaluation-harness's HFLM does (_encode_pair: trailing whitespace of the
context moves to the continuation; no special tokens; an empty context reads BOS, else EOS), the
input is (context + continuation)[-(max_length + 1):][:-1], and the model runs in float32. acc and
acc_norm (log-likelihood / len(choice), Python characters) are recomputed too. Exit 0 when every
log-likelihood is within --tol and acc / acc_norm agree, 1 otherwise.
"""
import argparse
import json
import math
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def encode_pair(tok, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation, add_special_tokens=False)
    ctx = tok.encode(context, add_special_tokens=False)
    return ctx, whole[len(ctx):]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--sparsa", required=True, help="the JSON `sparsa eval --task ... --json` printed")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).to(a.device).eval()
    max_length = model.config.max_position_embeddings
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    items = [json.loads(line) for line in open(a.task, encoding="utf-8") if line.strip()]
    got = json.load(open(a.sparsa, encoding="utf-8"))
    worst, bad, acc, acc_norm = 0.0, 0, 0, 0
    for scored in got["items"]:
        item = items[scored["index"]]
        lls = []
        for c, choice in enumerate(item["choices"]):
            if item["context"] == "":
                ctx, cont = [prefix], tok.encode(choice, add_special_tokens=False)
            else:
                ctx, cont = encode_pair(tok, item["context"], choice)
                ctx = ctx or [prefix]
            inp = (ctx + cont)[-(max_length + 1):][:-1]
            with torch.no_grad():
                logits = model(torch.tensor([inp], device=a.device)).logits[0].double()
            logp = torch.log_softmax(logits[-len(cont):], dim=-1)
            ll = logp.gather(1, torch.tensor(cont, device=a.device)[:, None]).sum().item()
            lls.append(ll)
            diff = abs(ll - scored["choices"][c]["loglik"])
            worst = max(worst, diff)
            if diff > a.tol:
                bad += 1
                print(f"item {scored['index']} choice {c}: transformers {ll:.6f}, sparsa "
                      f"{scored['choices'][c]['loglik']:.6f}", file=sys.stderr)
        pred = max(range(len(lls)), key=lambda i: (lls[i], -i))
        pred_norm = max(range(len(lls)), key=lambda i: (lls[i] / len(item["choices"][i]), -i))
        acc += pred == item["gold"]
        acc_norm += pred_norm == item["gold"]
    n = len(got["items"])
    same = math.isclose(acc / n, got["acc"]) and math.isclose(acc_norm / n, got["acc_norm"])
    print(json.dumps({"items": n, "max_abs_diff": worst, "over_tolerance": bad, "acc": acc / n,
                      "acc_norm": acc_norm / n, "sparsa_acc": got["acc"], "sparsa_acc_norm": got["acc_norm"]}))
    sys.exit(0 if bad == 0 and same else 1)


if __name__ == "__main__":
    main()
