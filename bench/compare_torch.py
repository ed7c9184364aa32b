#!/usr/bin/python3
"""ctxembed's recurrent encoders against PyTorch and ONNX Runtime, same
weights, same run.

Cases: a bidirectional LSTM (hidden 256; input 100 and 300; 1 and 2
layers) and a bidirectional GRU (input 100, 1 layer) at batch 1, 8, 32, 128
and 16 and 64 tokens per sentence; and mixed-length batches (the batcher's
real output: lengths drawn from 4..64) of the 1-layer LSTM. Each model is
built with random weights by tools/torch_encoder.py, exported with
tools/export_torch.py (for ctxembed) and torch.onnx.export (for ONNX
Runtime), and timed with each peer at its best correct setting:
  - PyTorch (Debian python3-torch with libopenblas0-pthread,
    OPENBLAS_NUM_THREADS=1, torch.set_num_threads(2), no_grad, from token
    ids): no packing for equal lengths (it would only cost it), packed
    sequences for mixed lengths;
  - ONNX Runtime 1.20 from npm's onnxruntime-node (bench/ort/time_ort.js:
    2 intra-op threads, all graph optimizations); for mixed lengths the
    exported graph runs the two directions as separate LSTMs, the backward
    one over each sentence reversed, and averages under a mask (a padded
    ONNX LSTM would let padding into the backward direction); checked
    against PyTorch's packed result before timing. Skipped with a message
    when bench/ort/node_modules is missing (install: cd bench/ort &&
    npm ci --ignore-scripts);
  - ctxembed (build/bench/encoder_timer on the exported directory) at the
    kernel level it picks on this CPU (--cpu_isa=auto) and at v3 (AVX2) when
    that is another one, so the AVX2 path is measured on an AVX-512 machine.
All compute embedding lookup, the encoder and mean pooling. Rounds are
interleaved (PyTorch, ONNX Runtime, ctxembed, twice) and the better median
of each is kept. Reduced precision: each model again with "precision":
"bf16" and "int8" (ctxembed only; against ONNX Runtime in fp32), and the
default model in fp32, bf16 and int8 on the STS-B dev sentences (cosine to
fp32, STS-B score; skipped without ../shared). Writes
bench/results/encoders.md and .json.

Usage: bench/compare_torch.py [--quick] [--build build]
"""
import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy/torch load OpenBLAS
import torch  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_torch  # noqa: E402
from torch_encoder import TorchEncoder  # noqa: E402

ORT_TIMER = os.path.join(ROOT, "bench", "ort", "time_ort.js")
# Interleaved rounds per case, the best median of each side kept: this
# machine's run-to-run noise is 10-30%.
ROUNDS = 5
HAVE_ORT = os.path.isdir(os.path.join(ROOT, "bench", "ort", "node_modules",
                                      "onnxruntime-node"))
VOCAB = ["<unk>"] + ["t%d" % i for i in range(999)]


def build(input_size, layers, kind="lstm", seed=1):
    torch.manual_seed(seed)
    tower = {"embedding": {"kind": "table", "tensor": "embed.weight",
                           "vocab": "vocab.txt", "unk_token": "<unk>"},
             "encoder": [{"kind": kind, "prefix": "rnn",
                          "input_size": input_size, "hidden_size": 256,
                          "num_layers": layers, "bidirectional": True}],
             "pooling": "mean"}
    enc = TorchEncoder(tower, vocab=VOCAB, embedding_dim=input_size)
    return tower, enc


class MeanEncoder(torch.nn.Module):
    """ids [batch, tokens] -> embedding -> RNN -> mean over tokens: what
    the three peers compute, for equal-length sentences."""

    def __init__(self, enc):
        super().__init__()
        self.enc = enc
        self.rnn = enc.rnns[0][0]

    def forward(self, ids):
        out, _ = self.rnn(self.enc._embed(ids))
        return out.mean(dim=1)


class MaskedBiEncoder(torch.nn.Module):
    """A 1-layer bidirectional RNN over padded sentences of mixed lengths,
    exactly: the forward direction over ids, the backward one (its own
    weights, as a forward RNN) over each sentence reversed, both averaged
    over the real tokens only."""

    def __init__(self, enc):
        super().__init__()
        self.enc = enc
        bi = enc.rnns[0][0]
        cls = type(bi)
        self.fwd = cls(bi.input_size, bi.hidden_size, batch_first=True)
        self.bwd = cls(bi.input_size, bi.hidden_size, batch_first=True)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.fwd, name + "_l0").copy_(getattr(bi, name + "_l0"))
                getattr(self.bwd, name + "_l0").copy_(
                    getattr(bi, name + "_l0_reverse"))

    def forward(self, ids, rev_ids, mask):
        f, _ = self.fwd(self.enc._embed(ids))
        b, _ = self.bwd(self.enc._embed(rev_ids))
        m = mask.unsqueeze(2)
        n = mask.sum(dim=1, keepdim=True)
        return torch.cat([(f * m).sum(1) / n, (b * m).sum(1) / n], dim=1)


def mixed_inputs(lengths):
    """Padded ids, per-sentence reversed ids and the mask for `lengths`,
    the ids time_ort.js makes."""
    b, t = len(lengths), max(lengths)
    ids = torch.zeros(b, t, dtype=torch.long)
    rev = torch.zeros(b, t, dtype=torch.long)
    mask = torch.zeros(b, t)
    for i, n in enumerate(lengths):
        for j in range(n):
            ids[i, j] = 1 + ((i * t + j) * 7919) % 999
        rev[i, :n] = ids[i, :n].flip(0)
        mask[i, :n] = 1
    return ids, rev, mask


def packed_mean(enc, ids, lengths):
    """PyTorch's own way for mixed lengths: packed sequences."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    x = pack_padded_sequence(enc._embed(ids), torch.tensor(lengths),
                             batch_first=True, enforce_sorted=False)
    out, _ = enc.rnns[0][0](x)
    out, _ = pad_packed_sequence(out, batch_first=True)
    return out.sum(1) / torch.tensor(lengths, dtype=torch.float32)[:, None]


def export_onnx_mixed(enc, path, lengths):
    model = MaskedBiEncoder(enc).eval()
    ids, rev, mask = mixed_inputs(lengths)
    with torch.no_grad():
        want = packed_mean(enc, ids, lengths)
        got = model(ids, rev, mask)
        assert (got - want).abs().max() < 1e-5, "masked graph != packed"
        torch.onnx.export(model, (ids, rev, mask), path,
                          input_names=["ids", "rev_ids", "mask"],
                          output_names=["vectors"], opset_version=14,
                          dynamic_axes={n: {0: "batch", 1: "tokens"}
                                        for n in ("ids", "rev_ids", "mask")})


def export_onnx(enc, path):
    model = MeanEncoder(enc).eval()
    ids = torch.randint(1, len(VOCAB), (2, 8))
    with torch.no_grad():
        torch.onnx.export(model, (ids,), path, input_names=["ids"],
                          output_names=["vectors"], opset_version=14,
                          dynamic_axes={"ids": {0: "batch", 1: "tokens"},
                                        "vectors": {0: "batch"}})


def time_ort(onnx_path, batch, tokens, min_seconds, lengths=None):
    args = ["node", ORT_TIMER, onnx_path, str(batch), str(tokens),
            "%g" % min_seconds, "2"]
    if lengths:
        args.append(",".join(map(str, lengths)))
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["ms_per_batch"] / 1e3


def time_torch(enc, batch, tokens, min_seconds, lengths=None):
    """Median seconds per batch: ids -> embedding -> RNN -> mean."""
    if lengths:
        ids, _, _ = mixed_inputs(lengths)

        def run():
            return packed_mean(enc, ids, lengths)
    else:
        model = MeanEncoder(enc).eval()
        ids = torch.randint(1, len(VOCAB), (batch, tokens))

        def run():
            return model(ids)

    times = []
    with torch.no_grad():
        for _ in range(3):
            run()
        begin = time.perf_counter()
        while time.perf_counter() - begin < min_seconds or len(times) < 5:
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_ctxembed(timer, model_dir, batch, tokens, min_seconds, level,
                  lengths=None):
    args = [timer, "--model_dir=" + model_dir, "--batch=%d" % batch,
            "--tokens=%d" % tokens, "--min_seconds=%g" % min_seconds,
            "--cpu_isa=" + level]
    if lengths:
        args.append("--lengths=" + ",".join(map(str, lengths)))
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def ctxembed_levels(timer, model_dir):
    """"auto" (what this CPU gets) and "v3" (AVX2) when auto is another."""
    out = json.loads(subprocess.run(
        [timer, "--model_dir=" + model_dir, "--batch=1", "--tokens=1",
         "--min_seconds=0"], capture_output=True, text=True,
        check=True).stdout)
    return {"auto": out["isa"]} if out["isa"] == "v3" else {
        "auto": out["isa"], "v3": "v3"}


SGEMM_SCRIPT = """
import time, numpy as np
a = np.random.rand(2048, 2048).astype(np.float32)
b = np.random.rand(2048, 2048).astype(np.float32)
a @ b
best = 0.0
for _ in range(5):
    t = time.perf_counter(); a @ b; t = time.perf_counter() - t
    best = max(best, 2 * 2048 ** 3 / t / 1e9)
print(best)
"""


def measure_sgemm_gflops():
    """The machine's sgemm rate now: OpenBLAS, 2 threads, 2048^3, best of 5
    (the ceiling the encoders are measured against)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", SGEMM_SCRIPT], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def measure_kernel_peak(build, level):
    """GFLOP/s of ctxembed's own GEMM kernel at `level` on its best shape
    (bench/gemm_bench, one core, the best of 3) times 2 cores: nearer the
    machine's FMA peak than OpenBLAS's sgemm, which the encoders reach at
    times. None without gemm_bench."""
    binary = os.path.join(build, "bench", "gemm_bench")
    if not os.path.exists(binary):
        return None
    out = subprocess.run(
        [binary, "--benchmark_filter=^%s/bert_ffn_in_t512$" % level,
         "--benchmark_min_time=0.5", "--benchmark_repetitions=3",
         "--benchmark_format=json"],
        capture_output=True, text=True, check=True)
    runs = [b["GFLOP/s"] for b in json.loads(out.stdout)["benchmarks"]
            if b.get("run_type") == "iteration"]
    return 2 * max(runs) / 1e9 if runs else None


def flops(input_size, layers, kind, total_tokens):
    h, gates, total = 256, 4 if kind == "lstm" else 3, 0.0
    for k in range(layers):
        inp = input_size if k == 0 else 2 * h
        total += 2 * 2.0 * gates * h * (inp + h) * total_tokens
    return total


def cases():
    """(kind, input, layers, tokens, batch, lengths or None)."""
    out = []
    for input_size in (100, 300):
        for layers in (1, 2):
            for tokens in (16, 64):
                for batch in (1, 8, 32, 128):
                    out.append(("lstm", input_size, layers, tokens, batch, None))
    for tokens in (16, 64):
        for batch in (1, 8, 32, 128):
            out.append(("gru", 100, 1, tokens, batch, None))
    rng = random.Random(5)
    for batch in (32, 128):
        lengths = [rng.randint(4, 64) for _ in range(batch)]
        out.append(("lstm", 100, 1, max(lengths), batch, lengths))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="0.2 s per case")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    min_s = 0.2 if args.quick else 1.0
    timer = os.path.join(args.build, "bench", "encoder_timer")
    sgemm = [measure_sgemm_gflops()]
    rows, levels = [], None
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for kind, input_size, layers, tokens, batch, lengths in cases():
            key = (kind, input_size, layers)
            if key not in models:
                tower, enc = build(input_size, layers, kind)
                model_dir = os.path.join(tmp, "%s%d_%d" % key)
                export_torch.export_model(
                    model_dir, dict(tower, name="bench", max_tokens=512),
                    enc.state_dict(), vocab=VOCAB)
                if HAVE_ORT:
                    export_onnx(enc, model_dir + ".onnx")
                # The same weights in each reduced precision.
                for precision in REDUCED:
                    with_precision(model_dir, model_dir + "_" + precision,
                                   precision)
                models[key] = (enc, model_dir)
                levels = levels or ctxembed_levels(timer, model_dir)
            enc, model_dir = models[key]
            onnx_path = model_dir + ".onnx"
            if lengths and HAVE_ORT:
                onnx_path = model_dir + "_mixed%d.onnx" % batch
                export_onnx_mixed(enc, onnx_path, lengths)
            # Interleaved rounds, the better median of each kept: this
            # machine has 10-30% run-to-run noise.
            t = o = None
            c = {}
            for _ in range(ROUNDS):
                t1 = time_torch(enc, batch, tokens, min_s / 2, lengths)
                t = t1 if t is None else min(t, t1)
                if HAVE_ORT:
                    o1 = time_ort(onnx_path, batch, tokens, min_s / 2, lengths)
                    o = o1 if o is None else min(o, o1)
                runs = [(name, model_dir, level) for name, level in levels.items()]
                runs += [(p, model_dir + "_" + p, "auto") for p in REDUCED]
                for name, directory, level in runs:
                    c1 = time_ctxembed(timer, directory, batch, tokens,
                                       min_s / 2, level, lengths)
                    if name not in c or c1["ms_per_batch"] < c[name]["ms_per_batch"]:
                        c[name] = c1
            total = sum(lengths) if lengths else batch * tokens
            f = flops(input_size, layers, kind, total)
            ms = c["auto"]["ms_per_batch"]
            row = {"kind": kind, "input": input_size, "layers": layers,
                   "tokens": "4-64" if lengths else tokens, "batch": batch,
                   "mixed": bool(lengths), "isa": c["auto"]["isa"],
                   "torch_ms": t * 1e3, "ort_ms": o * 1e3 if o else None,
                   "ctxembed_ms": ms, "ctxembed_sps": batch / ms * 1e3,
                   "speedup": t * 1e3 / ms,
                   "vs_ort": o * 1e3 / ms if o else None,
                   "ctxembed_gflops": f / (ms / 1e3) / 1e9,
                   "torch_gflops": f / t / 1e9}
            for p in REDUCED:
                row[p + "_ms"] = c[p]["ms_per_batch"]
                row[p + "_vs_ort"] = o * 1e3 / row[p + "_ms"] if o else None
            if "v3" in c:
                row["v3_ms"] = c["v3"]["ms_per_batch"]
                row["v3_vs_ort"] = o * 1e3 / row["v3_ms"] if o else None
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    sgemm.append(measure_sgemm_gflops())
    write_report(rows, args, max(sgemm), reduced_quality(args.build))


# The reduced precisions measured beside fp32 (config.json "precision").
REDUCED = ("bf16", "int8")


def with_precision(src, dst, precision):
    """A copy of model directory `src` at `dst` with "precision" set."""
    shutil.copytree(src, dst)
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config["precision"] = precision
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f)


def reduced_quality(build_dir):
    """The default model in fp32 and each reduced precision on the STS-B
    dev sentences (real text), through ctxembed-cli --local: cosine of each
    sentence vector to its fp32 one, and the STS-B dev Spearman of each.
    None without the STS Benchmark (../shared)."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from eval.evaluate import read_stsb, spearman
    try:
        pairs = read_stsb("dev")
    except OSError:
        return None
    import numpy as np
    cli = os.path.join(build_dir, "tools", "ctxembed-cli")
    texts = [p[0] for p in pairs] + [p[1] for p in pairs]
    default = os.path.join(ROOT, "models", "default")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [("fp32", default)]
        for precision in REDUCED:
            dirs.append((precision, os.path.join(tmp, precision)))
            with_precision(default, dirs[-1][1], precision)
        for name, directory in dirs:
            r = subprocess.run([cli, "embed", "--local", "--model_dir=" + directory,
                                "--normalize"], input="\n".join(texts) + "\n",
                               capture_output=True, text=True, check=True)
            out[name] = np.array([json.loads(l)["embedding"]
                                  for l in r.stdout.splitlines()])
    with open(os.path.join(default, "config.json")) as f:
        res = {"model": json.load(f)["name"], "sentences": len(texts)}
    n = len(pairs)
    for name in ("fp32",) + REDUCED:
        v = out[name]
        res[name + "_stsb"] = 100 * spearman((v[:n] * v[n:]).sum(1),
                                             [p[2] for p in pairs])
        if name != "fp32":
            cos = (out["fp32"] * v).sum(1)
            res[name] = {"min_cosine": float(cos.min()),
                         "mean_cosine": float(cos.mean())}
    return res


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def write_report(rows, args, sgemm_gflops, quality):
    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "encoders.json"), "w") as f:
        json.dump({"sgemm_gflops": sgemm_gflops, "rows": rows,
                   "reduced_quality": quality}, f, indent=1)
    isa = rows[0]["isa"]
    has_v3 = "v3_ms" in rows[0]
    lines = [
        "# Recurrent encoders: ctxembed vs PyTorch and ONNX Runtime",
        "",
        "Bidirectional LSTM and GRU, hidden 256, mean pooling; same weights, "
        "same run. Written by `bench/compare_torch.py%s` on %s, %s (CPU "
        "level %s), %d cores; PyTorch %s with OpenBLAS (OPENBLAS_NUM_THREADS=1, "
        "torch.set_num_threads(2), no_grad; no packing for equal lengths, "
        "packed sequences for mixed ones); ONNX Runtime %s (onnxruntime-node, "
        "2 intra-op threads, all graph optimizations, model from "
        "torch.onnx.export opset 14; for mixed lengths a masked graph, exact, "
        "see the script); ctxembed at the kernel level it chooses here (%s)%s. "
        "%d rounds are interleaved; each figure is the best of their medians of "
        "repeated batches; expect 10-30%% run-to-run noise on this machine."
        % (" --quick" if args.quick else "", time.strftime("%Y-%m-%d"),
           cpu_name(), cpu_level(), os.cpu_count(), torch.__version__,
           "1.20.1" if HAVE_ORT else "(not installed: column empty)", isa,
           " and at v3 (AVX2, FMA; `--cpu_isa=v3`)" if has_v3 else "",
           ROUNDS),
        "",
        "GFLOP/s counts 2 flops per multiply-add of the recurrent GEMMs (real "
        "tokens only); the ceiling is the machine's sgemm rate measured in "
        "the same run (OpenBLAS, 2 threads, 2048x2048x2048, best of 5, "
        "before and after the grid): %.0f GFLOP/s." % sgemm_gflops,
        "",
        "| rnn | input | layers | tokens | batch | PyTorch ms | ONNX Runtime ms "
        "| ctxembed ms | ctxembed sent/s | vs PyTorch | vs ONNX Runtime | "
        "ctxembed GFLOP/s | %% of sgemm |%s" % (
            " ctxembed v3 ms | v3 vs ONNX Runtime |" if has_v3 else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|%s"
        % ("---|---|" if has_v3 else ""),
    ]
    for r in rows:
        ort_ms = "%.3f" % r["ort_ms"] if r["ort_ms"] else "-"
        vs_ort = "%.2fx" % r["vs_ort"] if r["vs_ort"] else "-"
        line = ("| %s | %d | %d | %s | %d | %.3f | %s | %.3f | %.0f | %.2fx | "
                "%s | %.1f | %.0f%% |"
                % (r["kind"], r["input"], r["layers"],
                   "mixed " + r["tokens"] if r["mixed"] else r["tokens"],
                   r["batch"], r["torch_ms"], ort_ms, r["ctxembed_ms"],
                   r["ctxembed_sps"], r["speedup"], vs_ort,
                   r["ctxembed_gflops"],
                   100 * r["ctxembed_gflops"] / sgemm_gflops))
        if has_v3:
            line += " %.3f | %s |" % (
                r["v3_ms"], "%.2fx" % r["v3_vs_ort"] if r["v3_vs_ort"] else "-")
        lines.append(line)
    lines += ["", "## Targets against ONNX Runtime (fp32)", ""]
    peak = measure_kernel_peak(args.build, isa)
    if peak:
        lines += ["The kernel peak: ctxembed's GEMM kernel alone at %s on its "
                  "best shape (`bench/gemm_bench`, one core) times 2 cores, "
                  "%.0f GFLOP/s; OpenBLAS's sgemm rate is below it (the "
                  "encoders here reach 100%% of that rate at times)."
                  % (isa, peak), ""]
    lines += targets(rows, "vs_ort", "at %s" % isa, sgemm_gflops, peak)
    if has_v3:
        lines += [""] + targets(rows, "v3_vs_ort", "at v3 (AVX2)", None)
    lines += ["", "## Reduced precision: bf16 and int8 (`\"precision\"` in "
              "config.json)", "",
              "Same weights as above; ONNX Runtime in fp32 as above. bf16: "
              "weights rounded to bfloat16%s. int8: dynamic quantization "
              "(int8 weights with a scale per row, each input column "
              "quantized to uint8 as it arrives, exact int32 sums)%s." % (
                  ", multiplied by VDPBF16PS (this CPU has AVX512_BF16)"
                  if cpu_has_bf16() else
                  " and multiplied by the fp32 kernels (this CPU has no "
                  "AVX512_BF16)",
                  ", multiplied by VPDPBUSD (this CPU has AVX512_VNNI)"
                  if cpu_has_flag("avx512_vnni") else
                  " with the int8-rounded weights on the fp32 kernels (this "
                  "CPU has no AVX512_VNNI)"), "",
              "| rnn | input | layers | tokens | batch | ONNX Runtime fp32 ms | "
              "ctxembed fp32 ms | bf16 ms | bf16 vs fp32 | bf16 vs ONNX "
              "Runtime | int8 ms | int8 vs fp32 | int8 vs ONNX Runtime |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["kind"], "%d" % r["input"], "%d" % r["layers"],
                 "mixed " + r["tokens"] if r["mixed"] else "%s" % r["tokens"],
                 "%d" % r["batch"],
                 "%.3f" % r["ort_ms"] if r["ort_ms"] else "-",
                 "%.3f" % r["ctxembed_ms"]]
        for p in REDUCED:
            cells += ["%.3f" % r[p + "_ms"],
                      "%.2fx" % (r["ctxembed_ms"] / r[p + "_ms"]),
                      "%.2fx" % r[p + "_vs_ort"] if r[p + "_vs_ort"] else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if quality:
        for p in REDUCED:
            lines.append(
                "Error on real sentences, %s: the default model (`%s`) on the %d "
                "STS-B dev sentences against fp32: sentence-vector cosine min "
                "%.6f, mean %.6f; STS-B dev Spearman x100 %.2f (fp32) vs %.2f "
                "(%s)." % (p, quality["model"], quality["sentences"],
                           quality[p]["min_cosine"], quality[p]["mean_cosine"],
                           quality["fp32_stsb"], quality[p + "_stsb"], p))
            lines.append("")
    else:
        lines.append("Error on real sentences: not measured (the STS Benchmark "
                     "in ../shared is missing).")
    if all(r["bf16_vs_ort"] for r in rows):
        b32 = [r for r in rows if r["kind"] == "lstm" and r["tokens"] == 16
               and r["batch"] == 32]
        for p in REDUCED:
            worst = min(r[p + "_vs_ort"] for r in b32)
            ok_cos = quality and quality[p]["min_cosine"] >= 0.999
            lines += ["- %s target: batch 32 (LSTM, 16 tokens) at least 1.5x "
                      "ONNX Runtime fp32: worst %.2fx (%s); sentence-vector "
                      "cosine >= 0.999 to fp32: %s" % (
                          p, worst, "met" if worst >= 1.5 else "NOT met",
                          ("met (min %.6f)" % quality[p]["min_cosine"])
                          if ok_cos else
                          ("NOT met" if quality else "not measured"))]
    write_section(os.path.join(out_dir, "encoders.md"), None, lines)


# encoders.md holds this script's report and, after TRANSFORMER_MARK, the
# transformer section bench/compare_bert.py writes; each keeps the other's.
TRANSFORMER_MARK = "<!-- transformer section: bench/compare_bert.py -->"


def write_section(path, mark, lines):
    """Writes `lines` as the recurrent part (mark None) or the transformer
    part (mark TRANSFORMER_MARK) of `path`, keeping the other part."""
    old = open(path).read() if os.path.exists(path) else ""
    head, _, tail = old.partition(TRANSFORMER_MARK)
    body = "\n".join(lines) + "\n"
    if mark is None:
        text = body + (TRANSFORMER_MARK + tail if tail else "")
    else:
        text = head.rstrip("\n") + "\n\n" + TRANSFORMER_MARK + "\n" + body
    with open(path, "w") as f:
        f.write(text)


def cpu_has_flag(flag):
    with open("/proc/cpuinfo") as f:
        return any(l.startswith("flags") and flag in l.split() for l in f)


def cpu_has_bf16():
    return cpu_has_flag("avx512_bf16")


def cpu_level():
    out = subprocess.run(["/usr/bin/python3", "-c",
                          "import sys; sys.path.insert(0, %r); import harness;"
                          "print(harness.cpu_levels()[-1])"
                          % os.path.join(ROOT, "tests", "python")],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def targets(rows, ratio, what, sgemm_gflops, peak_gflops=None):
    """Issue 11's fp32 targets against ONNX Runtime."""
    if not all(r[ratio] for r in rows):
        return ["- ONNX Runtime not measured (bench/ort/node_modules missing)"]

    def pick(**kw):
        return [r for r in rows if all(r[k] == v for k, v in kw.items())]
    out = []
    for inp in (100, 300):
        for layers in (1, 2):
            b1 = pick(kind="lstm", input=inp, layers=layers, tokens=16, batch=1)[0]
            b32 = pick(kind="lstm", input=inp, layers=layers, tokens=16, batch=32)[0]
            line = ("- ctxembed %s, LSTM input %d, %d layer%s, 16 tokens: batch-1 "
                    "latency %.2fx lower than ONNX Runtime (target 1.3x: %s); "
                    "batch-32 throughput %.2fx (target 1.1x: %s)"
                    % (what, inp, layers, "s" if layers > 1 else "", b1[ratio],
                       "met" if b1[ratio] >= 1.3 else "NOT met", b32[ratio],
                       "met" if b32[ratio] >= 1.1 else "NOT met"))
            if sgemm_gflops:
                share = b32["ctxembed_gflops"] / sgemm_gflops
                line += "; %.0f%% of the sgemm rate (target 90%%: %s)" % (
                    100 * share, "met" if share >= 0.9 else "NOT met")
                # How far the target is from the machine's ceiling: ONNX
                # Runtime's rate is ctxembed's over the ratio.
                ort_share = share / b32[ratio]
                line += ("; ONNX Runtime itself runs at %.0f%% of the sgemm "
                         "rate, so 1.1x of it needs %.0f%%"
                         % (100 * ort_share, 110 * ort_share))
                if peak_gflops:
                    ort_peak = ort_share * sgemm_gflops / peak_gflops
                    line += (" (%.0f%% of the kernel peak, where ONNX Runtime "
                             "is at %.0f%%)" % (110 * ort_peak, 100 * ort_peak))
            out.append(line)
    worst = min(rows, key=lambda r: r[ratio])
    out.append("- ctxembed %s, slowest case against ONNX Runtime: %s input %d, "
               "%d layer%s, %s tokens, batch %d at %.2fx (target: no case "
               "below 1.0x: %s)"
               % (what, worst["kind"], worst["input"], worst["layers"],
                  "" if worst["layers"] == 1 else "s",
                  worst["tokens"], worst["batch"], worst[ratio],
                  "met" if worst[ratio] >= 1.0 else "NOT met"))
    return out


if __name__ == "__main__":
    main()
