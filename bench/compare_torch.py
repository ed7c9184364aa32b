#!/usr/bin/python3
"""ctxembed's recurrent encoders against PyTorch and ONNX Runtime, same
weights, same run.

For a bidirectional LSTM (hidden 256; input 100 and 300; 1 and 2 layers)
this builds a random-weight model with tools/torch_encoder.py, exports it
with tools/export_torch.py (for ctxembed) and torch.onnx.export (for ONNX
Runtime), then times at batch 1, 8, 32, 128 and 16 and 64 tokens per
sentence, each peer at its best setting:
  - PyTorch (Debian python3-torch with libopenblas0-pthread,
    OPENBLAS_NUM_THREADS=1, torch.set_num_threads(2), no_grad, from token
    ids; the batches are of equal length, so no packing, which would only
    cost it);
  - ONNX Runtime 1.20 from npm's onnxruntime-node (bench/ort/time_ort.js:
    2 intra-op threads, all graph optimizations); skipped with a message
    when bench/ort/node_modules is missing (install: cd bench/ort &&
    npm ci --ignore-scripts);
  - ctxembed (build/bench/encoder_timer on the exported directory).
All compute embedding lookup, the encoder and mean pooling. Rounds are
interleaved (PyTorch, ONNX Runtime, ctxembed, twice) and the better median
of each is kept. Writes bench/results/encoders.md and .json.

Usage: bench/compare_torch.py [--quick] [--build build]
"""
import argparse
import json
import os
import platform
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
HAVE_ORT = os.path.isdir(os.path.join(ROOT, "bench", "ort", "node_modules",
                                      "onnxruntime-node"))
VOCAB = ["<unk>"] + ["t%d" % i for i in range(999)]


def build(input_size, layers, seed=1):
    torch.manual_seed(seed)
    tower = {"embedding": {"kind": "table", "tensor": "embed.weight",
                           "vocab": "vocab.txt", "unk_token": "<unk>"},
             "encoder": [{"kind": "lstm", "prefix": "rnn",
                          "input_size": input_size, "hidden_size": 256,
                          "num_layers": layers, "bidirectional": True}],
             "pooling": "mean"}
    enc = TorchEncoder(tower, vocab=VOCAB, embedding_dim=input_size)
    return tower, enc


class MeanEncoder(torch.nn.Module):
    """ids [batch, tokens] -> embedding -> LSTM -> mean over tokens: what
    the three peers compute, for equal-length sentences."""

    def __init__(self, enc):
        super().__init__()
        self.enc = enc
        self.rnn = enc.rnns[0][0]

    def forward(self, ids):
        out, _ = self.rnn(self.enc._embed(ids))
        return out.mean(dim=1)


def export_onnx(enc, path):
    model = MeanEncoder(enc).eval()
    ids = torch.randint(1, len(VOCAB), (2, 8))
    with torch.no_grad():
        torch.onnx.export(model, (ids,), path, input_names=["ids"],
                          output_names=["vectors"], opset_version=14,
                          dynamic_axes={"ids": {0: "batch", 1: "tokens"},
                                        "vectors": {0: "batch"}})


def time_ort(onnx_path, batch, tokens, min_seconds):
    out = subprocess.run(["node", ORT_TIMER, onnx_path, str(batch),
                          str(tokens), "%g" % min_seconds, "2"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["ms_per_batch"] / 1e3


def time_torch(enc, batch, tokens, min_seconds):
    """Median seconds per batch: ids -> embedding -> LSTM -> mean."""
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


def time_ctxembed(timer, model_dir, batch, tokens, min_seconds):
    out = subprocess.run([timer, "--model_dir=" + model_dir,
                          "--batch=%d" % batch, "--tokens=%d" % tokens,
                          "--min_seconds=%g" % min_seconds],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


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


def flops(input_size, layers, batch, tokens):
    h, total = 256, 0.0
    for k in range(layers):
        inp = input_size if k == 0 else 2 * h
        total += 2 * 2.0 * 4 * h * (inp + h) * batch * tokens
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="0.2 s per case")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    min_s = 0.2 if args.quick else 1.0
    timer = os.path.join(args.build, "bench", "encoder_timer")
    sgemm = [measure_sgemm_gflops()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for input_size in (100, 300):
            for layers in (1, 2):
                tower, enc = build(input_size, layers)
                model_dir = os.path.join(tmp, "m%d_%d" % (input_size, layers))
                export_torch.export_model(
                    model_dir, dict(tower, name="bench", max_tokens=512),
                    enc.state_dict(), vocab=VOCAB)
                onnx_path = os.path.join(tmp, "m%d_%d.onnx" % (input_size, layers))
                if HAVE_ORT:
                    export_onnx(enc, onnx_path)
                for tokens in (16, 64):
                    for batch in (1, 8, 32, 128):
                        # Interleaved rounds, the better median of each kept:
                        # this machine has 10-30% run-to-run noise.
                        t = o = c = None
                        for _ in range(2):
                            t1 = time_torch(enc, batch, tokens, min_s / 2)
                            t = t1 if t is None else min(t, t1)
                            if HAVE_ORT:
                                o1 = time_ort(onnx_path, batch, tokens, min_s / 2)
                                o = o1 if o is None else min(o, o1)
                            c1 = time_ctxembed(timer, model_dir, batch, tokens,
                                               min_s / 2)
                            if c is None or c1["ms_per_batch"] < c["ms_per_batch"]:
                                c = c1
                        f = flops(input_size, layers, batch, tokens)
                        rows.append({
                            "input": input_size, "layers": layers,
                            "tokens": tokens, "batch": batch,
                            "torch_ms": t * 1e3,
                            "ort_ms": o * 1e3 if o else None,
                            "ctxembed_ms": c["ms_per_batch"],
                            "torch_sps": batch / t,
                            "ort_sps": batch / o if o else None,
                            "ctxembed_sps": c["sentences_per_s"],
                            "speedup": t * 1e3 / c["ms_per_batch"],
                            "vs_ort": o * 1e3 / c["ms_per_batch"] if o else None,
                            "ctxembed_gflops": f / (c["ms_per_batch"] / 1e3) / 1e9,
                            "torch_gflops": f / t / 1e9})
                        print(json.dumps(rows[-1]), flush=True)
    sgemm.append(measure_sgemm_gflops())
    write_report(rows, args, max(sgemm))


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def write_report(rows, args, sgemm_gflops):
    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "encoders.json"), "w") as f:
        json.dump(rows, f, indent=1)
    lines = [
        "# Recurrent encoders: ctxembed vs PyTorch and ONNX Runtime",
        "",
        "Bidirectional LSTM, hidden 256, mean pooling, equal-length "
        "sentences; same weights, same run. Written by `bench/compare_torch.py%s` "
        "on %s, %s, %d cores; PyTorch %s with OpenBLAS (OPENBLAS_NUM_THREADS=1, "
        "torch.set_num_threads(2), no_grad, no packing: the batches are of "
        "equal length); ONNX Runtime %s (onnxruntime-node, 2 intra-op threads, "
        "all graph optimizations, model from torch.onnx.export opset 14); "
        "ctxembed built for %s. Rounds are interleaved; each figure is the "
        "better of two medians of repeated batches; expect 10-30%% run-to-run "
        "noise on this machine."
        % (" --quick" if args.quick else "", time.strftime("%Y-%m-%d"),
           cpu_name(), os.cpu_count(), torch.__version__,
           "1.20.1" if HAVE_ORT else "(not installed: column empty)",
           "x86-64-v3 (AVX2, FMA)"),
        "",
        "GFLOP/s counts 2 flops per multiply-add of the LSTM GEMMs; the "
        "ceiling is the machine's sgemm rate measured in the same run "
        "(OpenBLAS, 2 threads, 2048x2048x2048, best of 5, before and after "
        "the grid): %.0f GFLOP/s." % sgemm_gflops,
        "",
        "| input | layers | tokens | batch | PyTorch ms | ONNX Runtime ms | "
        "ctxembed ms | ctxembed sent/s | vs PyTorch | vs ONNX Runtime | "
        "ctxembed GFLOP/s | % of sgemm |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ort_ms = "%.3f" % r["ort_ms"] if r["ort_ms"] else "-"
        vs_ort = "%.2fx" % r["vs_ort"] if r["vs_ort"] else "-"
        lines.append(
            "| %d | %d | %d | %d | %.3f | %s | %.3f | %.0f | %.2fx | %s | %.1f | %.0f%% |"
            % (r["input"], r["layers"], r["tokens"], r["batch"], r["torch_ms"],
               ort_ms, r["ctxembed_ms"], r["ctxembed_sps"], r["speedup"],
               vs_ort, r["ctxembed_gflops"],
               100 * r["ctxembed_gflops"] / sgemm_gflops))
    lines += ["", "## Targets against ONNX Runtime (fp32, 16 tokens)", ""]
    lines += targets(rows)
    with open(os.path.join(out_dir, "encoders.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def targets(rows):
    """Issue 11's fp32 targets against ONNX Runtime (16 tokens)."""
    if not all(r["vs_ort"] for r in rows):
        return ["- ONNX Runtime not measured (bench/ort/node_modules missing)"]
    def pick(**kw):
        return [r for r in rows if all(r[k] == v for k, v in kw.items())]
    out = []
    for inp in (100, 300):
        for layers in (1, 2):
            b1 = pick(input=inp, layers=layers, tokens=16, batch=1)[0]
            b32 = pick(input=inp, layers=layers, tokens=16, batch=32)[0]
            out.append(
                "- input %d, %d layer%s: batch-1 latency %.2fx lower than ONNX "
                "Runtime (target 1.3x: %s); batch-32 throughput %.2fx (target "
                "1.1x: %s)"
                % (inp, layers, "s" if layers > 1 else "", b1["vs_ort"],
                   "met" if b1["vs_ort"] >= 1.3 else "NOT met", b32["vs_ort"],
                   "met" if b32["vs_ort"] >= 1.1 else "NOT met"))
    worst = min(rows, key=lambda r: r["vs_ort"])
    out.append("- slowest case against ONNX Runtime: input %d, %d layers, %d "
               "tokens, batch %d at %.2fx (target: no case below 1.0x: %s)"
               % (worst["input"], worst["layers"], worst["tokens"],
                  worst["batch"], worst["vs_ort"],
                  "met" if worst["vs_ort"] >= 1.0 else "NOT met"))
    return out


if __name__ == "__main__":
    main()
