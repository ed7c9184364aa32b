#!/usr/bin/python3
"""ctxembed's recurrent encoders against PyTorch, same weights, same run.

For a bidirectional LSTM (hidden 256; input 100 and 300; 1 and 2 layers)
this builds a random-weight model with tools/torch_encoder.py, exports it
with tools/export_torch.py, then times at batch 1, 8, 32, 128 and 16 and 64
tokens per sentence:
  - PyTorch (Debian python3-torch with libopenblas0-pthread,
    OPENBLAS_NUM_THREADS=1, torch.set_num_threads(2), no_grad, packed
    sequences, from token ids: its fastest CPU setup here);
  - ctxembed (build/bench/encoder_timer on the exported directory).
Both compute embedding lookup, the encoder and mean pooling. Writes
bench/results/encoders.md and .json.

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
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_torch  # noqa: E402
from torch_encoder import TorchEncoder  # noqa: E402

PEAK_GFLOPS = 157.0  # 2 cores x 2 FMA units x 8 float lanes x 2 x 2.45 GHz
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


def time_torch(enc, batch, tokens, min_seconds):
    """Median seconds per batch: ids -> embedding -> packed LSTM -> mean."""
    rnn = enc.rnns[0][0]
    ids = torch.randint(1, len(VOCAB), (batch, tokens))
    lengths = torch.full((batch,), tokens, dtype=torch.long)

    def run():
        x = enc._embed(ids)
        packed = pack_padded_sequence(x, lengths, batch_first=True)
        out, _ = rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        return out.mean(dim=1)

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
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for input_size in (100, 300):
            for layers in (1, 2):
                tower, enc = build(input_size, layers)
                model_dir = os.path.join(tmp, "m%d_%d" % (input_size, layers))
                export_torch.export_model(
                    model_dir, dict(tower, name="bench", max_tokens=512),
                    enc.state_dict(), vocab=VOCAB)
                for tokens in (16, 64):
                    for batch in (1, 8, 32, 128):
                        # Two alternating rounds each, the better median kept:
                        # this machine has 20-30% run-to-run noise.
                        t = min(time_torch(enc, batch, tokens, min_s / 2)
                                for _ in range(2))
                        c = min((time_ctxembed(timer, model_dir, batch, tokens,
                                               min_s / 2) for _ in range(2)),
                                key=lambda r: r["ms_per_batch"])
                        f = flops(input_size, layers, batch, tokens)
                        rows.append({
                            "input": input_size, "layers": layers,
                            "tokens": tokens, "batch": batch,
                            "torch_ms": t * 1e3,
                            "ctxembed_ms": c["ms_per_batch"],
                            "torch_sps": batch / t,
                            "ctxembed_sps": c["sentences_per_s"],
                            "speedup": t * 1e3 / c["ms_per_batch"],
                            "ctxembed_gflops": f / (c["ms_per_batch"] / 1e3) / 1e9,
                            "torch_gflops": f / t / 1e9})
                        print(json.dumps(rows[-1]), flush=True)
    write_report(rows, args)


def write_report(rows, args):
    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "encoders.json"), "w") as f:
        json.dump(rows, f, indent=1)
    lines = [
        "# Recurrent encoders: ctxembed vs PyTorch",
        "",
        "Bidirectional LSTM, hidden 256, mean pooling, equal-length "
        "sentences; same weights, same run. Written by `bench/compare_torch.py%s` "
        "on %s, %s, %d cores; PyTorch %s with OpenBLAS (OPENBLAS_NUM_THREADS=1, "
        "torch.set_num_threads(2), no_grad, packed sequences). Each figure is "
        "the better of two medians of repeated batches; expect 20-30%% "
        "run-to-run noise on this machine."
        % (" --quick" if args.quick else "", time.strftime("%Y-%m-%d"),
           platform.processor() or platform.machine(), os.cpu_count(),
           torch.__version__),
        "",
        "GFLOP/s counts 2 flops per multiply-add of the LSTM GEMMs; the "
        "machine's peak is about %.0f GFLOP/s." % PEAK_GFLOPS,
        "",
        "| input | layers | tokens | batch | PyTorch ms | ctxembed ms | "
        "PyTorch sent/s | ctxembed sent/s | speedup | ctxembed GFLOP/s | % of peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            "| %d | %d | %d | %d | %.2f | %.3f | %.0f | %.0f | %.1fx | %.1f | %.0f%% |"
            % (r["input"], r["layers"], r["tokens"], r["batch"], r["torch_ms"],
               r["ctxembed_ms"], r["torch_sps"], r["ctxembed_sps"],
               r["speedup"], r["ctxembed_gflops"],
               100 * r["ctxembed_gflops"] / PEAK_GFLOPS))
    lines += ["", "## Targets (16 tokens)", ""]
    lines += targets(rows)
    with open(os.path.join(out_dir, "encoders.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def targets(rows):
    def pick(**kw):
        return [r for r in rows if all(r[k] == v for k, v in kw.items())]
    out = []
    for inp in (100, 300):
        for layers in (1, 2):
            b1 = pick(input=inp, layers=layers, tokens=16, batch=1)[0]
            b32 = pick(input=inp, layers=layers, tokens=16, batch=32)[0]
            need = 3.0 if inp == 100 else 2.0
            big = [r for r in pick(input=inp, layers=layers, tokens=16)
                   if r["batch"] >= 32]
            worst = min(100 * r["ctxembed_gflops"] / PEAK_GFLOPS for r in big)
            out.append(
                "- input %d, %d layer%s: batch-1 latency %.1fx lower (target 8x: %s); "
                "batch-32 throughput %.1fx (target %.0fx: %s); batch >= 32 at "
                "%.0f%%+ of peak (target 70%%: %s)"
                % (inp, layers, "s" if layers > 1 else "", b1["speedup"],
                   "met" if b1["speedup"] >= 8 else "NOT met", b32["speedup"],
                   need, "met" if b32["speedup"] >= need else "NOT met", worst,
                   "met" if worst >= 70 else "NOT met"))
    return out


if __name__ == "__main__":
    main()
