#!/usr/bin/env python3
"""Writes persuasion-next.jsonl: a 4-way "which words continue this passage" task made from the
bundled data/persuasion.txt (the format: docs/tasks.md).

Each item: context = a paragraph of the book up to a point inside one of its sentences (at least
CONTEXT_WORDS words in); choices = the WORDS words that really follow (gold) and 3 runs of WORDS
words drawn from paragraphs elsewhere in the book; the gold's position among the choices is drawn
too. Equal word counts keep the choices' lengths alike. Deterministic: a fixed linear
congruential generator, Python standard library only. Run from anywhere:

    python3 data/tasks/make_persuasion_next.py            # rewrites data/tasks/persuasion-next.jsonl
"""
import json
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parent / "persuasion.txt"
OUT = HERE / "persuasion-next.jsonl"
ITEMS = 40
CHOICES = 4
WORDS = 6
CONTEXT_WORDS = 30
MAX_CONTEXT_WORDS = 200


class Lcg:
    """Knuth's MMIX LCG: the same numbers on every Python and platform."""

    def __init__(self, seed):
        self.state = seed

    def below(self, n):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) % 2**64
        return (self.state >> 33) % n


def paragraphs(text):
    """Each paragraph as its list of words."""
    for block in re.split(r"\n\s*\n", text):
        words = block.split()
        if words:
            yield words


def inside_sentence(words, k):
    """True when the cut before words[k] falls inside a sentence (the previous word ends none)."""
    return not re.search(r"[.!?;:\"']$", words[k - 1]) and not re.search(r"[.!?]", " ".join(words[k:k + WORDS]))


def main():
    paras = list(paragraphs(SOURCE.read_text(encoding="utf-8")))
    usable = [i for i, w in enumerate(paras) if len(w) >= CONTEXT_WORDS + WORDS]
    spans = [(i, k) for i, w in enumerate(paras) for k in range(1, len(w) - WORDS + 1) if inside_sentence(w, k)]
    rng = Lcg(20240521)
    step = len(usable) / ITEMS
    lines = []
    for n in range(ITEMS):
        i = usable[int(n * step)]
        words = paras[i]
        cuts = [k for k in range(CONTEXT_WORDS, min(len(words) - WORDS, MAX_CONTEXT_WORDS) + 1) if inside_sentence(words, k)]
        cut = cuts[rng.below(len(cuts))] if cuts else CONTEXT_WORDS
        gold_text = " ".join(words[cut:cut + WORDS])
        distractors = []
        while len(distractors) < CHOICES - 1:
            j, k = spans[rng.below(len(spans))]
            text = " ".join(paras[j][k:k + WORDS])
            if abs(j - i) > 5 and text != gold_text and text not in distractors:
                distractors.append(text)
        gold = rng.below(CHOICES)
        choices = distractors[:gold] + [gold_text] + distractors[gold:]
        lines.append(json.dumps({"id": f"persuasion-{i}-{cut}", "context": " ".join(words[:cut]),
                                 "choices": [" " + c for c in choices], "gold": gold}, ensure_ascii=False))
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(lines)} items from {len(usable)} usable paragraphs")


if __name__ == "__main__":
    main()
