# Makes small torch.save fixtures for sparsa's safe pickle reader, plus expected.json.
import collections, io, json, os, sys, zipfile
import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
expected = {}

def flat(t):
    t = t.detach().cpu()
    if t.dtype == torch.bool:
        return [int(v) for v in t.reshape(-1).tolist()]
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.reshape(-1).tolist()

def record(name, obj, note):
    path = os.path.join(out, name)
    torch.save(obj, path)
    def desc(o):
        if isinstance(o, torch.Tensor):
            return {"kind": "tensor", "dtype": str(o.dtype).replace("torch.", ""),
                    "shape": list(o.shape), "values": flat(o)}
        if isinstance(o, dict):
            return {"kind": type(o).__name__, "items": {k: desc(v) for k, v in o.items()}}
        if isinstance(o, (list, tuple)):
            return {"kind": type(o).__name__, "items": [desc(v) for v in o]}
        return {"kind": type(o).__name__, "value": o}
    expected[name] = {"note": note, "object": desc(obj)}

# The Python study's per-matrix files: layer{N}-{component}-{i}-{j}-{sparsity}.pt
w = torch.randn(12, 20)
mask = w.abs() < w.abs().median()
record("layer0-mlp.down_proj-0-0-0.5.pt", mask, "bool mask, 1 = pruned")
record("layer1-self_attn.q_proj-0-0-0.5.pt", (torch.rand(8, 16) < 0.5), "bool mask")
record("layer0-mlp.up_proj-0-0-0.5.pt", torch.randn(10, 6).half(), "fp16 weights")
record("f32_2d.pt", torch.randn(5, 7), "float32")
record("bf16_1d.pt", torch.randn(9).bfloat16(), "bfloat16")
record("i64.pt", torch.arange(-5, 7, dtype=torch.int64).reshape(3, 4), "int64")
record("i32.pt", torch.arange(0, 10, dtype=torch.int32), "int32")
record("u8.pt", torch.randint(0, 255, (4, 3), dtype=torch.uint8), "uint8")
record("f64.pt", torch.randn(2, 3, dtype=torch.float64), "float64")
record("scalar.pt", torch.tensor(3.5), "0-d tensor")
base = torch.randn(6, 8)
record("transposed.pt", base.t(), "non-contiguous view: strides (1, 8)")
big = torch.arange(40, dtype=torch.float32)
record("slice_offset.pt", big[10:22].view(3, 4), "storage offset 10, storage longer than tensor")
sd = collections.OrderedDict()
shared = torch.randn(4, 4)
sd["a.weight"] = shared
sd["a.weight_t"] = shared.t()
sd["b.bias"] = torch.randn(4)
record("state_dict.pt", sd, "OrderedDict, two tensors share one storage")
record("mixed.pt", {"step": 7, "lr": 0.5, "name": "wanda", "ok": True, "none": None,
                    "dims": [1, 2, 3], "pair": (4, 5), "t": torch.ones(2, 2)},
       "plain dict with python scalars, list, tuple, tensor")
record("empty_tensor.pt", torch.zeros(0, 5), "zero-sized tensor")

class Evil:
    def __reduce__(self):
        return (os.system, ("echo sparsa-pwned > /tmp/sparsa_pwned",))
torch.save({"payload": Evil(), "t": torch.ones(2)}, os.path.join(out, "evil_os_system.pt"))
class Evil2:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))
torch.save([Evil2()], os.path.join(out, "evil_eval.pt"))
torch.save(torch.ones(3), os.path.join(out, "legacy_format.pt"), _use_new_zipfile_serialization=False)

# Truncate the storage of a valid file: the tensor claims more bytes than its storage holds.
src = os.path.join(out, "f32_2d.pt")
dst = os.path.join(out, "truncated_storage.pt")
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
    for info in zin.infolist():
        data = zin.read(info.filename)
        if info.filename.endswith("/data/0"):
            data = data[: len(data) // 2]
        zout.writestr(info.filename, data)
expected["evil_os_system.pt"] = {"note": "reject: os.system via __reduce__", "reject": True}
expected["evil_eval.pt"] = {"note": "reject: builtins.eval via __reduce__", "reject": True}
expected["legacy_format.pt"] = {"note": "reject: pre-1.6 non-zip format", "reject": True}
expected["truncated_storage.pt"] = {"note": "reject: storage shorter than tensor", "reject": True}
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump({"torch_version": torch.__version__, "files": expected}, f, indent=1)
print("torch", torch.__version__)
for n in sorted(os.listdir(out)):
    print(n, os.path.getsize(os.path.join(out, n)))
