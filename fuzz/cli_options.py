#!/usr/bin/env python3
"""CLI option fuzzer: random values and combinations of every sparsa command's options.

The commands and their options come from the parser's own table (`sparsa --list-options`), so a
new option is fuzzed without a change here. Each case starts from a small valid invocation of one
command on the demo models (the bundled LLaMA, OPT and stories260K from ../shared when present)
and mutates it: options set to valid, boundary and hostile values (nan/inf/-1/0/huge numbers, empty
strings, missing files, folders, FIFOs, /dev/null, files of the wrong kind), options dropped,
repeated or written as --opt=value, unknown options added. Every run happens in its own folder of
a temporary directory, under a wall-clock limit, with the files it may read copied there; nothing
is written into the repository or ../shared (checked at the end).

A run passes when it exits 0, 1 or 2 with no signal, no sanitizer report, no hang (the time limit)
and no memory blow-up (--max-rss-mb). Its output is also checked for the project's error contract,
reported as warnings: an exit 1/2 whose stderr is not one "sparsa: ..." line, or a raw library
message (std::, filesystem error, stoi...), and a successful run that prints nan/inf.

Case N of a seed is always the same command line (its random stream is seeded with "SEED:N"), so
`--seed S --case N` reruns one finding. Exit status: 0 clean, 1 findings, 3 the fuzzer could not
start (no binary, fixtures failed).

  fuzz/cli_options.py --sparsa build-asan/sparsa --budget 120        # CI: two minutes
  fuzz/cli_options.py --sparsa build-asan/sparsa --budget 1200 --seed 7
  fuzz/cli_options.py --sparsa build-asan/sparsa --seed 7 --case 431  # rerun one case
"""
import argparse
import collections
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer", "AddressSanitizer:DEADLYSIGNAL")
# Library or runtime text that should never reach a user as the whole error message.
RAW_ERROR_MARKERS = ("std::", "filesystem error", "basic_string", "stoi", "stol", "stod", "terminate called",
                     "what():", "vector::", "bad_alloc", "bad_optional", "Assertion")
SERVE_ALIVE_SECONDS = 4.0  # `serve` still running after this long has started: a pass


# ---- fixtures: every file a case may read, in the temporary directory -------------------------

def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: (dtype, shape, bytes)}"""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def int32_tokens(rng, rows, cols, high):
    return struct.pack(f"<{rows * cols}i", *(rng.randrange(3, high) for _ in range(rows * cols)))


class Fixtures:
    """The input files of every case. Paths are absolute; `inputs` maps a role to its candidates."""

    def __init__(self, tmp, sparsa, shared, no_fifo=False):
        self.no_fifo = no_fifo  # leave FIFOs out of the hostile paths
        self.dir = os.path.join(tmp, "fixtures")
        os.makedirs(self.dir)
        self.sparsa = sparsa
        self.shared = shared if shared and os.path.isdir(shared) else None
        self.llama = os.path.join(ROOT, "models", "tiny-llama-15m")
        self.opt = self._shared("models", "tiny-opt-14m")
        self.stories = self._shared("models", "stories260K", "stories260K.bin")
        self.tok512 = self._shared("models", "stories260K", "tok512.bin")

    def _shared(self, *parts):
        if not self.shared:
            return None
        p = os.path.join(self.shared, *parts)
        return p if os.path.exists(p) else None

    def path(self, name):
        return os.path.join(self.dir, name)

    def build(self, env, timeout):
        rng = random.Random(0)
        # Token ids below 500 are valid for every demo model (stories260K has 512).
        write_safetensors(self.path("tokens.safetensors"),
                          {"calib": ("I32", [4, 32], int32_tokens(rng, 4, 32, 500)),
                           "eval": ("I32", [3, 32], int32_tokens(rng, 3, 32, 500))})
        write_safetensors(self.path("tokens-i64.safetensors"),
                          {"calib": ("I64", [2, 8], struct.pack("<16q", *range(3, 19)))})
        write_safetensors(self.path("tokens-1d.safetensors"), {"calib": ("I32", [16], int32_tokens(rng, 1, 16, 500))})
        write_safetensors(self.path("tokens-oob.safetensors"),
                          {"calib": ("I32", [2, 8], struct.pack("<16i", *([5] * 15 + [2**31 - 1]))),
                           "eval": ("I32", [2, 8], struct.pack("<16i", *([5] * 15 + [-7])))})
        write_safetensors(self.path("tokens-empty.safetensors"), {"calib": ("I32", [0, 32], b"")})
        text = ("It was the best of times, it was the worst of times; the quick brown fox jumps over the lazy dog. "
                "Once upon a time there was a little girl who liked to read. ") * 12
        with open(self.path("text.txt"), "w") as f:
            f.write(text)
        with open(self.path("short.txt"), "w") as f:
            f.write("Hi")
        open(self.path("empty.txt"), "w").close()
        with open(self.path("bad-utf8.txt"), "wb") as f:
            f.write(b"valid start \xff\xfe\xc3 broken \xe2\x82 end\n" * 20)
        with open(self.path("binary.bin"), "wb") as f:
            f.write(bytes(rng.randrange(256) for _ in range(4096)))
        with open(self.path("ids.txt"), "w") as f:
            f.write("1 450 12 99 2")
        with open(self.path("bad.json"), "w") as f:
            f.write('{"version": 1, "model": [')
        os.mkfifo(self.path("fifo"))
        self.devnull, self.devzero = private_device(self.path("null"), 3), private_device(self.path("zero"), 5)
        os.makedirs(self.path("empty-dir"))
        os.makedirs(self.path("full-dir"))
        with open(self.path("full-dir/note.txt"), "w") as f:
            f.write("user file\n")
        self._copy_masks()
        self._copy_pt()
        self._make_study(env, timeout)

    def _copy_masks(self):
        golden = [("magnitude_u50", "mask-llama-u50.safetensors"), ("wanda_2-4", "mask-llama-2-4.safetensors"),
                  ("opt_magnitude_u50", "mask-opt-u50.safetensors")]
        for src, dst in golden:
            p = self._shared("golden", src + ".safetensors")
            if p:
                shutil.copy(p, self.path(dst))

    def _copy_pt(self):
        pt = os.path.join(ROOT, "tests", "data", "pt")
        os.makedirs(self.path("pt"))
        os.makedirs(self.path("pt-all"))
        for name in sorted(os.listdir(pt)):
            if name.endswith(".pt"):
                shutil.copy(os.path.join(pt, name), self.path("pt-all"))
                if name.startswith("layer"):
                    shutil.copy(os.path.join(pt, name), self.path("pt"))

    def _make_study(self, env, timeout):
        """A pruned folder and a study database with a dense and a prune run, made by the binary under test."""
        db, pruned = self.path("study.duckdb"), self.path("pruned")
        for argv in ([self.sparsa, "eval", "--eval-limit", "1", "--seqlen", "32", "--eval-tokens", self.path("tokens.safetensors"),
                      "--db", db],
                     [self.sparsa, "prune", "--method", "magnitude", "--sparsity", "0.5", "--out", pruned, "--db", db]):
            r = subprocess.run(argv, cwd=self.dir, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout)
            if r.returncode != 0:
                raise RuntimeError(f"fixture command failed ({r.returncode}): {shlex.join(argv)}\n{r.stderr.decode()}")
        if not os.path.exists(self.path("mask-llama-u50.safetensors")):
            shutil.copy(os.path.join(pruned, "masks.safetensors"), self.path("mask-llama-u50.safetensors"))

    def masks(self):
        return [self.path(n) for n in ("mask-llama-u50.safetensors", "mask-llama-2-4.safetensors",
                                       "mask-opt-u50.safetensors") if os.path.exists(self.path(n))]

    def hostile_inputs(self):
        """Paths that are not what an input option wants."""
        return [self.path("missing/nothing"), self.path("fifo"), self.devnull, self.devzero, self.path("empty-dir"),
                self.path("empty.txt"), self.path("binary.bin"), self.path("bad.json"), "", "/",
                self.path("full-dir/note.txt/below")]

    def snapshot_roots(self):
        """What no case may change: the fixtures, the repository's model and data, ../shared."""
        roots = [self.dir, os.path.join(ROOT, "models"), os.path.join(ROOT, "data"), os.path.join(ROOT, "tests", "data")]
        if self.shared:
            roots += [os.path.join(self.shared, "models"), os.path.join(self.shared, "golden")]
        return roots


def private_device(path, minor):
    """A copy of /dev/null (minor 3) or /dev/zero (5) at `path`: a command that replaces the file it
    is told to write (an atomic rename over it) must never get the system's own, which as root it
    could replace. Without the right to make device nodes the system's is used: then it cannot be
    replaced either."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        return path
    except OSError:
        return "/dev/null" if minor == 3 else "/dev/zero"


def tree_snapshot(roots):
    snap = {}
    for dev in ("/dev/null", "/dev/zero"):  # never replaced, whatever a case does
        st = os.stat(dev)
        snap[dev] = (stat.S_ISCHR(st.st_mode), st.st_rdev)
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for name in [d] + [os.path.join(d, f) for f in sorted(files)]:
                try:
                    st = os.lstat(name)
                except OSError:
                    continue
                snap[name] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return snap


# ---- values -------------------------------------------------------------------------------------

INT_BOUNDARY = ["-1", "0", "1", "2", "-2147483648", "2147483647", "2147483648", "4294967296",
                "9223372036854775807", "9223372036854775808", "-9223372036854775809", "99999999999999999999999",
                "1e3", "0x10", "", "abc", "3.5", " 7", "+3", "007", "-0", "1_000", "nan", "inf"]
FLOAT_BOUNDARY = ["0", "-0", "0.5", "1", "1.5", "-1", "nan", "-nan", "NaN", "inf", "-inf", "infinity", "1e-320",
                  "1e-300", "1e308", "1e309", "-1e309", "", "abc", "0x1p-1", "1,5", "0.5.5", ".5", "5.", "1e", " 0.5"]
TEXT_BOUNDARY = ["", " ", "x", "-", "--", "=", "-1", "nan", "h\u00e9llo \u4e16\u754c \U0001F642", "\udcff\udcfe",
                 "a" * 5000, "\t\n", "$(echo hi)", "%s%n%d", "../../etc/passwd", "NUL\x01byte"]


def fractions(rng):
    return rng.choice(["0.5", "0.25", "0.3", "0.7", "0.9", "0.1"])


def target_value(rng, nm_only=False, fraction_only=False):
    good = ["2:4", "4:8", "1:2", "1:4", "3:4"] if nm_only else (["0.5", "0.3", "0.7"] if fraction_only else
                                                              ["0.5", "0.3", "2:4", "4:8"])
    bad = ["0", "1", "-0.5", "1.5", "nan", "inf", "-inf", "1e-300", "0.99999999", "0:4", "4:4", "5:4", "2:0", "0:0",
           "-1:4", "2:4:8", "2:", ":4", "2/4", "1:1000000", "2147483647:2147483648", "99999999999:4", "2 : 4", "",
           "abc", "0x1p-1", "5e-1", "0.5 ", "0.5%", "50"]
    return rng.choice(good) if rng.random() < 0.5 else rng.choice(bad)


def list_value(rng, element):
    n = rng.choice([1, 1, 2, 3])
    items = [element(rng) for _ in range(n)]
    r = rng.random()
    if r < 0.1:
        return rng.choice(["", ",", ",,", "none", "0.5,,0.3", " , "])
    if r < 0.2:
        items.append(items[0])  # a repeated element
    return ",".join(items)


class Values:
    """Generates a value for an option: by the option's role (its name) when known, else by its type."""

    def __init__(self, fx, valid_only=False):
        self.fx = fx
        self.W = "@W"  # replaced by the case's own folder when the case is run
        self.valid_only = valid_only  # a case of valid values only, to reach the commands' work

    def pick(self, rng, good, bad, p_good=0.6):
        good = [g for g in good if g is not None]
        if self.fx.no_fifo:
            bad = [b for b in bad if not b.endswith("/fifo")]
        return rng.choice(good) if good and (self.valid_only or rng.random() < p_good) else rng.choice(bad)

    # Input files
    def model(self, rng):
        fx = self.fx
        return self.pick(rng, [fx.llama, fx.llama, fx.opt, fx.stories, fx.path("pruned")],
                         fx.hostile_inputs() + [fx.path("full-dir"), fx.tok512, fx.path("tokens.safetensors"),
                                                fx.path("pruned/masks.safetensors"), fx.path("pruned") + "/"])

    def tokenizer(self, rng):
        fx = self.fx
        return self.pick(rng, [os.path.join(fx.llama, "tokenizer.json"), fx.opt and os.path.join(fx.opt, "tokenizer.json"),
                               fx.tok512, fx.llama],
                         fx.hostile_inputs() + [fx.path("text.txt"), fx.path("tokens.safetensors")])

    def tokens(self, rng):
        fx = self.fx
        return self.pick(rng, [fx.path("tokens.safetensors"), fx.path("tokens.safetensors"), os.path.join(ROOT, "data", "calib-tokens.safetensors")],
                         fx.hostile_inputs() + [fx.path(n) for n in ("tokens-i64.safetensors", "tokens-1d.safetensors",
                                                                     "tokens-oob.safetensors", "tokens-empty.safetensors",
                                                                     "text.txt")] + fx.masks())

    def key(self, rng):
        return self.pick(rng, ["calib", "eval"], ["", "nope", "__metadata__", "calib ", "CALIB", "eval_ood",
                                                  "model.layers.0.mlp.down_proj.mask"])

    def text_file(self, rng):
        fx = self.fx
        return self.pick(rng, [fx.path("text.txt"), fx.path("text.txt"), os.path.join(ROOT, "data", "persuasion.txt")],
                         fx.hostile_inputs() + [fx.path("bad-utf8.txt"), fx.path("short.txt"), fx.path("ids.txt")])

    def mask(self, rng):
        fx = self.fx
        return self.pick(rng, fx.masks() + [fx.path("pruned")],
                         fx.hostile_inputs() + [fx.path("tokens.safetensors"), fx.llama])

    def mask_key(self, rng):
        layer = rng.choice(["0", "1", "5"])
        part = rng.choice(["mlp.down_proj", "mlp.up_proj", "self_attn.q_proj", "self_attn.o_proj"])
        return self.pick(rng, [f"model.layers.{layer}.{part}.mask"],
                         ["", "nope", "model.layers.99.mlp.down_proj.mask", "model.layers.0.mlp.down_proj.weight",
                          "__metadata__", "model.decoder.layers.0.fc1.mask"])

    def pt_dir(self, rng):
        fx = self.fx
        return self.pick(rng, [fx.path("pt"), fx.path("pt")], fx.hostile_inputs() + [fx.path("pt-all"), fx.path("full-dir")])

    def db(self, rng):
        fx, W = self.fx, self.W
        # Hostile databases are in the case's folder too: a command may write to its --db.
        return self.pick(rng, [f"{W}/study.duckdb", f"{W}/study.duckdb", f"{W}/new.duckdb"],
                         ["", f"{W}/null", f"{W}/fifo", f"{W}/file.txt", f"{W}/full", f"{W}/missing/x.duckdb", W,
                          f"{W}/file.txt/x.duckdb", f"{W}/full/note.txt"])

    # Output paths (always inside the case's folder, or refused special files)
    def out_dir(self, rng):
        W = self.W
        return self.pick(rng, [f"{W}/out", f"{W}/out/", f"{W}/a/b/out"],
                         ["", f"{W}/null", f"{W}/full", f"{W}/file.txt", f"{W}/fifo", ".", f"{W}/file.txt/below",
                          f"{W}/full/note.txt", f"{W}/study.duckdb"])

    def out_file(self, rng, ext):
        W = self.W
        return self.pick(rng, [f"{W}/out.{ext}", f"{W}/sub/out.{ext}"],
                         ["", f"{W}/null", f"{W}/full", f"{W}/fifo", W, f"{W}/file.txt/x.{ext}", f"{W}/file.txt",
                          f"{W}/out", f"{W}/out.weird"])

    # Structured text values
    def sparsity(self, rng):
        return target_value(rng, fraction_only=True)

    def nm(self, rng):
        return target_value(rng, nm_only=True)

    def targets(self, rng):
        return list_value(rng, lambda r: target_value(r))

    def fraction_list(self, rng):
        return list_value(rng, lambda r: fractions(r) if r.random() < 0.7 else target_value(r))

    def methods(self, rng):
        return list_value(rng, lambda r: r.choice(["magnitude", "magnitude", "wanda", "sparsegpt", "", "foo", "Wanda"]))

    def ks(self, rng):
        return list_value(rng, lambda r: r.choice(["2", "3", "4", "0", "1", "-1", "100000", "2.5", "x"]))

    def bits(self, rng):
        point = rng.choice(["down_in", "qkv_in", "o_in", "gate_up_in", "nope", ""])
        good = [f"{rng.choice(['0', '1'])}:{point}:{fractions(rng)}"]
        return self.pick(rng, good, ["0:down_in:nan", "-1:down_in:0.5", "99:down_in:0.5", "0:down_in", "", ":::",
                                     "0:down_in:1.5", "0:down_in:0", "9223372036854775808:down_in:0.5", "0::0.5"])

    def labels(self, rng):
        return list_value(rng, lambda r: r.choice(["a", "b", "mag", "", "x,y", "\u00e9"]))

    def prompt(self, rng):
        return self.pick(rng, ["Once upon a time", "Hello", "The"], TEXT_BOUNDARY)

    def text(self, rng):
        return self.pick(rng, ["Call me Ishmael.", "hello world", "1 450 12", "[1, 2, 3]"],
                         TEXT_BOUNDARY + ["99999999", "-1", "1,,2", "[", "1e3", "[1, 2", "2147483648", "[8192]"])

    def host(self, rng):
        return self.pick(rng, ["127.0.0.1", "localhost"], ["", "::1", "127.0.0.2", "999.1.1.1", "0.0.0.0.0", "-", "[::1]"])

    def port(self, rng):
        return self.pick(rng, ["0"], ["-1", "65536", "99999999999", "abc", "", "1e3", "0x10"], p_good=0.7)

    def bench_results(self, rng):
        return self.pick(rng, [os.path.join(ROOT, "bench", "RESULTS.md"), self.fx.path("text.txt")],
                         self.fx.hostile_inputs() + [self.fx.path("bad-utf8.txt")])

    def masks_dir(self, rng):
        return self.pick(rng, [self.fx.path("pruned"), self.fx.dir], self.fx.hostile_inputs())

    def figures_dir(self, rng):
        W = self.W
        return self.pick(rng, [f"{W}/figures"], ["", f"{W}/null", f"{W}/fifo", f"{W}/file.txt", f"{W}/missing/x", W])

    # By type, with a valid range per option where a small one exists
    def integer(self, rng, lo, hi, signed=True):
        if self.valid_only or rng.random() < 0.5:
            return str(rng.randint(lo, hi))
        if rng.random() < 0.3:  # large, every order of magnitude (10^5 threads, 10^9 columns, ...)
            return str(rng.choice([10, 2]) ** rng.randint(3, 62) + rng.choice([-1, 0, 0, 1]))
        v = rng.choice(INT_BOUNDARY)
        return v if signed or rng.random() < 0.5 else v.lstrip("-")

    def floating(self, rng, lo, hi):
        if self.valid_only or rng.random() < 0.5:
            return repr(round(rng.uniform(lo, hi), 4))
        return rng.choice(FLOAT_BOUNDARY)

    def free_text(self, rng):
        return rng.choice(TEXT_BOUNDARY[2:4] if self.valid_only else TEXT_BOUNDARY)


# Role of each option by name (the option table's type decides for the rest). Numbers: (lo, hi) of
# small valid values, so a valid run stays short.
ROLE = {
    "--model": "model", "--tokenizer": "tokenizer", "--calib": "tokens",
    "--eval-tokens": "tokens", "--calib-key": "key", "--eval-key": "key",
    "--text-file": "text_file", "--eval-text": "text_file", "--calib-text": "text_file",
    "--mask": "mask", "--shapes-from": "mask", "sets": "mask", "dir": "pt_dir", "--key@plot spy": "mask_key",
    "--db": "db", "--out": "out_dir", "--parquet": "out_dir", "--out@import": "out_file:safetensors",
    "--out@plot spy": "out_file:png", "--out@report": "out_file:md", "--bits-out": "out_file:safetensors",
    "--features-out": "out_file:csv", "--sparsity": "sparsity", "--sparsity@import": "sparsity", "--nm": "nm",
    "--targets": "targets", "--sweep": "targets",
    "--act-sparsities": "fraction_list", "--methods": "methods", "--ks": "ks", "--bits": "bits", "--labels": "labels",
    "--prompt": "prompt", "--text@tokenize": "text", "--host": "host", "--port": "port",
    "--bench-results": "bench_results", "--masks": "masks_dir", "--figures": "figures_dir",
}
NUMBER_RANGE = {
    "--seqlen": (2, 48), "--nsamples": (1, 3), "--steps": (1, 12), "--threads": (1, 3),
    "--blocksize": (1, 128), "--percdamp": (0.0, 0.1), "--seed": (0, 1000), "--temperature": (0.0, 2.0),
    "--top-p": (0.0, 1.0), "--eval-limit": (0, 2), "--bitset-windows": (1, 2),
    "--bitset-sparsity": (0.1, 0.9), "--analysis-layer": (0, 5), "--kmeans-runs": (1, 2),
    "--null-shuffles": (1, 2), "--neighbour-references": (1, 2),
    "--tsne-iterations": (1, 20), "--layer": (0, 5), "--cols": (1, 512), "--width": (200, 400),
    "--height": (200, 400), "--vocab-size": (1, 512), "--chunk-tokens": (1, 4096), "--gpus": (1, 2),
    "--layers": (1, 2), "--hidden": (8, 64), "--intermediate": (8, 128), "--heads": (1, 4), "--kv-heads": (1, 4),
    "--vocab": (16, 600), "--init-std": (0.0, 0.1), "--calib-samples": (0, 2), "--calib-seqlen": (1, 32),
    "--max-rows": (1, 1000), "--max-seconds": (0.1, 10.0), "--max-request-bytes": (1, 1 << 20),
    "--max-response-bytes": (1, 1 << 20),
}


# Options that bound a run's work (a window count, a step count, the study's plan): never dropped
# from the base case, and set only to small valid values or to invalid ones, so that a valid run
# stays short (e.g. `eval --eval-limit 0` evaluates every window of the text: correct, but minutes).
GUARD = {
    "eval": {"--eval-limit"}, "acts": {"--nsamples", "--eval-limit"}, "generate": {"--steps"}, "prune": {"--nsamples"},
    "study": {"--methods", "--targets", "--sweep", "--nsamples", "--eval-limit", "--bitset-windows", "--ks",
              "--kmeans-runs", "--tsne-iterations", "--act-sparsities"},
    "synth": {"--layers", "--hidden", "--intermediate", "--heads", "--vocab", "--calib-samples", "--calib-seqlen"},
}
GUARD_INVALID = ["-1", "-2147483648", "9223372036854775808", "-9223372036854775809", "", "abc", "3.5", "nan", "0x10"]
# Per command: the time limit is this many times --timeout.
SLOW = {"study": 4}


def generate_value(values, rng, command, opt):
    name = opt["name"]
    if name in GUARD.get(command, ()) and opt["type"] in ("INT", "UINT"):
        lo, hi = NUMBER_RANGE.get(name, (1, 2))
        return str(rng.randint(max(1, int(lo)), int(hi))) if values.valid_only or rng.random() < 0.6 \
            else rng.choice(GUARD_INVALID)
    role = ROLE.get(f"{name}@{command}") or ROLE.get(name)
    if role:
        if role.startswith("out_file:"):
            return values.out_file(rng, role.split(":", 1)[1])
        return getattr(values, role)(rng)
    for v in opt["validators"]:  # IsMember: {a,b,c}
        m = re.fullmatch(r"\{(.*)\}", v)
        if m:
            choices = [c.strip() for c in m.group(1).split(",")]
            return values.pick(rng, choices, TEXT_BOUNDARY + [choices[0].upper(), choices[0] + " "], p_good=0.75)
    lo, hi = NUMBER_RANGE.get(name, (0, 8))
    if opt["type"] in ("INT", "UINT"):
        return values.integer(rng, int(lo), int(hi), signed=opt["type"] == "INT")
    if opt["type"] == "FLOAT":
        return values.floating(rng, float(lo), float(hi))
    return values.free_text(rng)


# ---- cases --------------------------------------------------------------------------------------

def base_case(fx, command):
    """A small valid invocation: (option, value) pairs; None for a flag, "" option name for a positional."""
    W = "@W"
    tokens = fx.path("tokens.safetensors")
    masks = fx.masks()
    return {
        "study": [("--out", f"{W}/study"), ("--methods", "magnitude"), ("--targets", "0.5"), ("--sweep", "none"),
                  ("--calib", tokens), ("--nsamples", "2"), ("--seqlen", "32"), ("--eval-tokens", tokens),
                  ("--eval-limit", "1"), ("--act-sparsities", "0.5"), ("--bitset-windows", "1"), ("--ks", "2"),
                  ("--kmeans-runs", "1"), ("--tsne-iterations", "5"), ("--no-figures", None)],
        "report": [("--db", f"{W}/study.duckdb")],
        "serve": [("--db", f"{W}/study.duckdb"), ("--port", "0")],
        "eval": [("--eval-tokens", tokens), ("--eval-limit", "1"), ("--seqlen", "32")],
        "generate": [("--prompt", "Once upon a time"), ("--steps", "8")],
        "tokenize": [("--tokenizer", os.path.join(fx.llama, "tokenizer.json")), ("--text", "Call me Ishmael.")],
        "compare": [("sets", masks[0]), ("sets", masks[-1])],
        "acts": [("--calib", tokens), ("--calib-key", "calib"), ("--nsamples", "1"), ("--seqlen", "32"),
                 ("--act-sparsities", "0.5"), ("--eval-key", "eval"), ("--eval-limit", "1")],
        "import": [("dir", fx.path("pt")), ("--out", f"{W}/imported.safetensors")],
        "export": [("--db", f"{W}/study.duckdb"), ("--parquet", f"{W}/parquet")],
        "plot spy": [("--mask", masks[0]), ("--key", "model.layers.0.mlp.down_proj.mask"), ("--out", f"{W}/spy.png")],
        "prune": [("--method", "magnitude"), ("--sparsity", "0.5"), ("--out", f"{W}/pruned"), ("--calib", tokens),
                  ("--nsamples", "1"), ("--seqlen", "32")],
        "synth": [("--preset", "tiny"), ("--out", f"{W}/synth"), ("--layers", "1"), ("--hidden", "64"),
                  ("--intermediate", "128"), ("--heads", "2"), ("--vocab", "300"), ("--calib-samples", "1"),
                  ("--calib-seqlen", "16")],
    }.get(command, [])


# Commands that do much work get fewer cases.
WEIGHT = {"study": 0.4, "serve": 0.6, "prune": 1.4, "eval": 1.2, "acts": 1.0}
UNKNOWN = ["--bogus", "--bogus=1", "-z", "--", "-", "---x", "--=", "stray", "--model=", "--json=maybe", "-h", "--help",
           "--version", "--list-options"]


def make_case(table, fx, seed, index):
    rng = random.Random(f"{seed}:{index}")
    values = Values(fx, valid_only=rng.random() < 0.3)
    commands = [c for c in table]
    command = rng.choices(commands, weights=[WEIGHT.get(c, 1.0) for c in commands])[0]
    options = {o["name"]: o for o in table[command]}
    args = list(base_case(fx, command))
    if command == "prune" and rng.random() < 0.5:
        args[0] = ("--method", rng.choice(["wanda", "sparsegpt"]))
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4, 6])):
        weights = [35, 20, 3, 3, 0, 12] if values.valid_only else [35, 20, 15, 10, 8, 12]
        op = rng.choices(["set", "add", "drop", "dup", "unknown", "eq"], weights=weights)[0]
        if op in ("set", "add") or not args:
            opt = rng.choice(list(options.values()))
            if op == "set":
                args = [a for a in args if a[0] != opt["name"]]
            n = rng.choice([1, 1, 2, 3]) if opt["max_values"] != 1 and not opt["flag"] else 1
            for _ in range(n):
                args.append((opt["name"], None if opt["flag"] else generate_value(values, rng, command, opt)))
        elif op == "drop":
            i = rng.randrange(len(args))
            if args[i][0] not in GUARD.get(command, ()):
                args.pop(i)
        elif op == "dup":
            name, value = rng.choice(args)
            opt = options.get(name)
            if opt and not opt["flag"] and rng.random() < 0.5:
                value = generate_value(values, rng, command, opt)
            args.append((name, value))
        elif op == "unknown":  # a made-up option, or another command's (with or without a value)
            other = rng.choice([o for c in table.values() for o in c if not o["positional"]])
            raw = rng.choice(UNKNOWN) if rng.random() < 0.5 else other["name"]
            args.insert(rng.randrange(len(args) + 1), (raw, "@RAW"))
            if not other["flag"] and rng.random() < 0.5:
                args.insert(rng.randrange(len(args) + 1), (generate_value(values, rng, command, other), "@RAW"))
        elif op == "eq":
            i = rng.randrange(len(args))
            name, value = args[i]
            if value not in (None, "@RAW") and name.startswith("--"):
                args[i] = (f"{name}={value}", "@RAW")
    argv = command.split()
    for name, value in args:
        opt = options.get(name)
        if value == "@RAW":
            argv.append(name)
        elif opt and opt["positional"]:
            argv.append(value)
        elif value is None:
            argv.append(name)
        else:
            argv += [name, value]
    return command, argv


# ---- running ------------------------------------------------------------------------------------

def sanitizer_env(asan_max_mb):
    env = dict(os.environ)
    env.update({
        "SPARSA_PROGRESS": "0", "OMP_NUM_THREADS": "1",
        # As scripts/sanitize.sh, plus: an allocation above the limit fails as std::bad_alloc (what a
        # machine without that much memory does) instead of taking the shared machine's memory.
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:"
                        f"allocator_may_return_null=1:max_allocation_size_mb={asan_max_mb}",
        "LSAN_OPTIONS": f"suppressions={ROOT}/scripts/lsan.supp:print_suppressions=0",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    })
    return env


def limit_child():
    # Files above 1 GiB fail with EFBIG (SIGXFSZ ignored) rather than filling the disk; no core files.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.setsid()


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def prepare_workdir(W, fx):
    os.makedirs(W)
    shutil.copy(fx.path("study.duckdb"), os.path.join(W, "study.duckdb"))
    os.makedirs(os.path.join(W, "full"))
    with open(os.path.join(W, "full", "note.txt"), "w") as f:
        f.write("user file\n")
    with open(os.path.join(W, "file.txt"), "w") as f:
        f.write("user file\n")
    os.mkfifo(os.path.join(W, "fifo"))
    node = os.path.join(W, "null")
    return node if private_device(node, 3) == node else None


def replaced_device(node):
    """The failure when the case's own /dev/null copy is no longer a device (None when it is)."""
    if node and not stat.S_ISCHR(os.lstat(node).st_mode if os.path.lexists(node) else stat.S_IFCHR):
        return f"replaced a device node given as a path ({node} is now a regular file): as root, the same " \
               "command line with /dev/null replaces the system's /dev/null"
    return None


def run_case(sparsa, argv, W, env, timeout, max_rss_mb, serve):
    full = [sparsa] + [a.replace("@W", W) for a in argv]
    t0 = time.monotonic()
    p = subprocess.Popen(full, cwd=W, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=limit_child)
    out_chunks, err_chunks = [], []
    readers = [threading.Thread(target=lambda s=s, c=c: c.append(s.read()), daemon=True)
               for s, c in ((p.stdout, out_chunks), (p.stderr, err_chunks))]
    for t in readers:
        t.start()
    verdict, peak = None, 0
    while p.poll() is None:
        elapsed = time.monotonic() - t0
        peak = max(peak, rss_mb(p.pid))
        if serve and elapsed > SERVE_ALIVE_SECONDS:
            verdict = "served"
        elif peak > max_rss_mb:
            verdict = "memory"
        elif elapsed > timeout:
            verdict = "hang"
        if verdict:
            os.killpg(p.pid, signal.SIGTERM if verdict == "served" else signal.SIGKILL)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            break
        time.sleep(0.05)
    for t in readers:
        t.join(timeout=10)
    stdout = b"".join(out_chunks).decode(errors="replace")
    stderr = b"".join(err_chunks).decode(errors="replace")
    return full, p.returncode, verdict, stdout, stderr, time.monotonic() - t0, peak


def classify(rc, verdict, stdout, stderr, peak, max_rss_mb, timeout):
    """(failure or None, [warnings])"""
    warnings = []
    if any(m in stderr for m in SANITIZER_MARKERS):
        m = re.search(r"(ERROR: \w+Sanitizer: [\w-]+|runtime error: [^\n]{0,80})", stderr)
        return f"sanitizer: {m.group(1) if m else 'report'}", warnings
    if verdict == "hang":
        return f"hang: still running after {timeout:.0f} s", warnings
    if verdict == "memory":
        return f"memory: resident set above {max_rss_mb} MB", warnings
    if verdict == "served":
        return None, warnings
    if rc < 0:
        return f"signal: {signal.Signals(-rc).name}", warnings
    if rc not in (0, 1, 2):
        return f"exit status {rc}", warnings
    lines = [l for l in stderr.splitlines() if l.strip()]
    if rc != 0:
        if not lines:
            warnings.append("error without a message")
        elif any(m in lines[-1] for m in RAW_ERROR_MARKERS):
            warnings.append(f"raw error text: {lines[-1][:100]}")
        elif "out of memory" in lines[-1] and ":" not in lines[-1].replace("sparsa:", "", 1):
            warnings.append("out of memory without a file/field")
    if rc == 0 and re.search(r"(?<![\w])(-?nan|-?inf)(?![\w])", stdout, re.I):
        warnings.append("non-finite number printed with exit 0")
    return None, warnings


def signature(command, failure, stderr):
    """Findings with one signature are one bug: the command, the failure, the first frame in sparsa's code."""
    frame = re.search(r"#\d+ 0x[0-9a-f]+ in (\S+) (\S*/(src|tools)/[^\s:]+)", stderr)
    where = frame.group(2).split("/src/")[-1].split("/tools/")[-1] if frame else ""
    return f"{command} | {failure.split(':')[0]}: {failure.split(':', 1)[-1].strip()[:60]} | {where}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--sparsa", default=os.path.join(ROOT, "build-asan", "sparsa"),
                    help="the binary (default: build-asan/sparsa, scripts/sanitize.sh's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=float, default=120, help="seconds of fuzzing (fixtures not counted)")
    ap.add_argument("--runs", type=int, default=0, help="stop after this many cases (0: only the budget)")
    ap.add_argument("--case", type=int, action="append", help="run only case N of --seed (repeatable)")
    ap.add_argument("--timeout", type=float, default=40, help="seconds a run may take before it counts as a hang")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-rss-mb", type=int, default=3072)
    ap.add_argument("--asan-max-alloc-mb", type=int, default=2048)
    ap.add_argument("--commands", help="comma-separated commands to fuzz (default: all)")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--no-fifo", action="store_true",
                    help="give no FIFO as a path (while their hang is a known finding, to look for others)")
    ap.add_argument("--warnings-fail", action="store_true", help="count warnings as findings")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case")
    ap.add_argument("--log", help="write every case as a JSON line (argv, exit, seconds, last stderr line) to this file")
    a = ap.parse_args()

    sparsa = os.path.abspath(a.sparsa)
    if not os.access(sparsa, os.X_OK):
        print(f"cli-fuzz: no binary at {sparsa} (scripts/sanitize.sh --build-only builds it)", file=sys.stderr)
        return 3
    listing = subprocess.run([sparsa, "--list-options"], capture_output=True, text=True)
    if listing.returncode != 0:
        print(f"cli-fuzz: {sparsa} --list-options failed: {listing.stderr.strip()}", file=sys.stderr)
        return 3
    table = {c["command"]: c["options"] for c in json.loads(listing.stdout)["commands"]}
    if a.commands:
        wanted = set(a.commands.split(","))
        table = {c: o for c, o in table.items() if c in wanted}

    tmp = tempfile.mkdtemp(prefix="sparsa-cli-fuzz-")
    env = sanitizer_env(a.asan_max_alloc_mb)
    env["TMPDIR"] = tmp
    fx = Fixtures(tmp, sparsa, a.shared, a.no_fifo)
    t_setup = time.monotonic()
    try:
        fx.build(env, timeout=300)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"cli-fuzz: could not make the fixtures: {e}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        return 3
    before = tree_snapshot(fx.snapshot_roots())
    print(f"cli-fuzz: {len(table)} commands, {sum(len(o) for o in table.values())} options, seed {a.seed}, "
          f"budget {a.budget:.0f} s, {a.jobs} jobs, {a.timeout:.0f} s per run; fixtures in "
          f"{time.monotonic() - t_setup:.0f} s under {tmp}", flush=True)

    results = {}
    lock = threading.Lock()
    indices = a.case if a.case else None
    next_index = [0]
    t_start = time.monotonic()

    def take():
        with lock:
            if indices is not None:
                if next_index[0] >= len(indices):
                    return None
                next_index[0] += 1
                return indices[next_index[0] - 1]
            if a.runs and next_index[0] >= a.runs:
                return None
            if time.monotonic() - t_start > a.budget:
                return None
            next_index[0] += 1
            return next_index[0] - 1

    def worker():
        while (i := take()) is not None:
            command, argv = make_case(table, fx, a.seed, i)
            W = os.path.join(tmp, "runs", str(i))
            node = prepare_workdir(W, fx)
            timeout = a.timeout * SLOW.get(command, 1)
            full, rc, verdict, out, err, secs, peak = run_case(sparsa, argv, W, env, timeout, a.max_rss_mb,
                                                               command == "serve")
            failure, warnings = classify(rc, verdict, out, err, peak, a.max_rss_mb, timeout)
            failure = failure or replaced_device(node)
            if a.warnings_fail and warnings and not failure:
                failure = "warning: " + warnings[0]
            with lock:
                results[i] = dict(command=command, argv=full, W=W, rc=rc, verdict=verdict, failure=failure,
                                  warnings=warnings, seconds=secs, stderr=err)
                if a.verbose or a.case or failure:
                    status = failure or (verdict or f"exit {rc}")
                    print(f"[{i}] {secs:5.1f}s {status}: {shlex.join(full[1:])}"[:400], flush=True)
                if a.case:
                    print("".join(f"  | {line}\n" for line in err.splitlines()[-20:]), end="", flush=True)
            if not failure:
                shutil.rmtree(W, ignore_errors=True)

    threads = [threading.Thread(target=worker) for _ in range(max(1, a.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    after = tree_snapshot(fx.snapshot_roots())
    if a.log:
        with open(a.log, "w") as f:
            for i in sorted(results):
                r = results[i]
                last = ([l for l in r["stderr"].splitlines() if l.strip()] or [""])[-1]
                f.write(json.dumps({"case": i, "argv": r["argv"][1:], "rc": r["rc"], "verdict": r["verdict"],
                                    "failure": r["failure"], "seconds": round(r["seconds"], 2), "stderr": last}) + "\n")
    return report(a, results, elapsed, before, after, tmp, env)


def report(a, results, elapsed, before, after, tmp, env):
    per_command = collections.Counter(r["command"] for r in results.values())
    exits = collections.Counter(r["verdict"] or f"exit {r['rc']}" for r in results.values())
    findings = collections.OrderedDict()
    warn = collections.OrderedDict()
    for i in sorted(results):
        r = results[i]
        if r["failure"]:
            findings.setdefault(signature(r["command"], r["failure"], r["stderr"]), []).append(i)
        for w in r["warnings"]:
            warn.setdefault(f"{r['command']} | {re.sub(r'/tmp/[^ ]*', 'PATH', w)[:90]}", []).append(i)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))

    print(f"\ncli-fuzz: {len(results)} runs in {elapsed:.0f} s (seed {a.seed}): "
          + ", ".join(f"{c} {n}" for c, n in sorted(per_command.items())))
    print("cli-fuzz: outcomes: " + ", ".join(f"{k} {n}" for k, n in sorted(exits.items())))
    env_line = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"))
    for sig, cases in findings.items():
        r = results[cases[0]]
        print(f"\nFINDING ({len(cases)} case{'s' if len(cases) > 1 else ''}: {', '.join(map(str, cases[:8]))}) {sig}")
        print(f"  reproduce: cd {r['W']} && {env_line} {shlex.join(r['argv'])}")
        same = (f" --commands {shlex.quote(a.commands)}" if a.commands else "") + (" --no-fifo" if a.no_fifo else "")
        print(f"  or: {sys.argv[0]} --sparsa {a.sparsa} --seed {a.seed}{same} --case {cases[0]} --keep")
        tail = [l for l in r["stderr"].splitlines() if l.strip()][-6:]
        for line in tail:
            print(f"  | {line[:200]}")
    if warn:
        print("\ncli-fuzz: warnings (the error contract: one 'sparsa: ...' line naming the file/field/option):")
        for w, cases in warn.items():
            r = results[cases[0]]
            print(f"  {len(cases):3d}x {w}\n       e.g. [{cases[0]}] {shlex.join(r['argv'][1:])[:300]}")
    if changed:
        print(f"\nFINDING: runs changed files outside their folder: {', '.join(changed[:10])}")
    clean = not findings and not changed
    print(f"\ncli-fuzz: {'clean' if clean else f'{len(findings)} findings'}"
          f"{f', {len(warn)} kinds of warnings' if warn else ''}; {len(results)} runs, {elapsed:.0f} s")
    if a.keep or not clean:
        print(f"cli-fuzz: the runs' folders (failing ones kept) are under {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
