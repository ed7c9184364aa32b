#!/usr/bin/python3
"""ctxembed's transformer encoder against PyTorch and ONNX Runtime, same
weights, same run: the all-MiniLM-L6-v2 shape (hidden 384, 6 layers, 12
heads, intermediate 1536, vocabulary 30522) with random weights
(tools/bert_reference.py), 16 and 128 tokens, batch 1 and 32, and a
mixed-length batch of 32 (lengths 8..128, the batcher's real output).
Every side computes the word-embedding lookup, the encoder and mean pooling
with normalization, from token ids (ctxembed: from word-piece tokens, which
it looks up):
  - PyTorch (Debian python3-torch, torch.set_num_threads(2), no_grad):
    tools/bert_reference.py, Hugging Face BertModel's operations; a padded
    batch with the attention mask for mixed lengths;
  - ONNX Runtime (onnxruntime-node, bench/ort/time_ort.js: 2 intra-op
    threads, all graph optimizations) on the same module exported with
    torch.onnx.export (opset 14), ids and mask inputs; and, with
    python3-onnx, the same graph quantized to int8 as ONNX Runtime's
    quantize_dynamic does it (bench/ort/quantize_dynamic.py), the peer of
    ctxembed's int8;
  - ctxembed (build/bench/encoder_timer on the sentence-transformers
    directory) at the kernel level it picks (--cpu_isa=auto), in fp32 and,
    from the same directory with a ctxembed.json of {"precision": "bf16"}
    or "int8", in reduced precision (opt-in; against the peers in fp32),
    with the vectors' cosine to fp32 on 256 sentences of 1..126 words.
Rounds are interleaved (three) and the best median of each is kept. Writes the
transformer section of bench/results/encoders.md and
bench/results/transformer.json.

Usage: bench/compare_bert.py [--quick] [--build build]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"
import torch  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bert_reference  # noqa: E402
import compare_torch  # noqa: E402

try:  # python3-onnx: ONNX Runtime's int8 model (bench/ort/quantize_dynamic.py)
    sys.path.insert(0, os.path.join(ROOT, "bench", "ort"))
    import quantize_dynamic  # noqa: E402
except ImportError:
    quantize_dynamic = None

ROUNDS = 3  # interleaved; this machine's run-to-run noise is 10-30%
SHAPE = dict(hidden=384, layers=6, heads=12, intermediate=1536,
             max_positions=512)
VOCAB_SIZE = 30522


class MeanPooled(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, mask):
        return bert_reference.pool(self.model(ids, mask), mask, "mean", True)


def cases():
    rng = random.Random(1)
    out = [(tokens, batch, None) for tokens in (16, 128) for batch in (1, 32)]
    out.append((128, 32, [rng.randint(8, 128) for _ in range(32)]))
    return out


def inputs(batch, tokens, lengths):
    """Ids as time_ort.js makes them (1 + (i * 7919) % 999), and the mask."""
    ids = torch.zeros(batch, tokens, dtype=torch.long)
    mask = torch.zeros(batch, tokens, dtype=torch.long)
    for i in range(batch):
        n = lengths[i] if lengths else tokens
        for j in range(n):
            ids[i, j] = 1 + ((i * tokens + j) * 7919) % 999
            mask[i, j] = 1
    return ids, mask


def time_torch(module, batch, tokens, lengths, min_seconds):
    ids, mask = inputs(batch, tokens, lengths)
    times = []
    with torch.no_grad():
        for _ in range(2):
            module(ids, mask)
        begin = time.perf_counter()
        while time.perf_counter() - begin < min_seconds or len(times) < 3:
            start = time.perf_counter()
            module(ids, mask)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="0.3 s per case")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    min_s = 0.3 if args.quick else 1.5
    timer = os.path.join(args.build, "bench", "encoder_timer")
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
             + ["w%d" % i for i in range(VOCAB_SIZE - 5)])
    model = bert_reference.BertReference(VOCAB_SIZE, seed=3, **SHAPE).eval()
    module = MeanPooled(model).eval()
    rows = []
    sgemm = [compare_torch.measure_sgemm_gflops()]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "minilm-shape")
        bert_reference.write_model_dir(model_dir, model, vocab=vocab,
                                       pooling="mean", normalize=True,
                                       max_seq_length=512)
        onnx_path = os.path.join(tmp, "minilm-shape.onnx")
        if compare_torch.HAVE_ORT:
            ids, mask = inputs(2, 8, None)
            with torch.no_grad():
                torch.onnx.export(module, (ids, mask), onnx_path,
                                  input_names=["ids", "mask"],
                                  output_names=["vectors"], opset_version=14,
                                  dynamic_axes={"ids": {0: "b", 1: "t"},
                                                "mask": {0: "b", 1: "t"},
                                                "vectors": {0: "b"}})
        ort_int8 = None
        if compare_torch.HAVE_ORT and quantize_dynamic:
            ort_int8 = os.path.join(tmp, "minilm-shape-int8.onnx")
            quantize_dynamic.quantize(onnx_path, ort_int8)
        low_dirs = {}
        for p in compare_torch.REDUCED:
            low_dirs[p] = model_dir + "-" + p
            shutil.copytree(model_dir, low_dirs[p])
            with open(os.path.join(low_dirs[p], "ctxembed.json"), "w") as f:
                json.dump({"precision": p}, f)
        quality = reduced_quality(args.build, model_dir, low_dirs, vocab)
        if ort_int8:
            quality["ort_int8"] = ort_int8_quality(onnx_path, ort_int8)
        print(json.dumps(quality), flush=True)
        for tokens, batch, lengths in cases():
            t = o = c = oq = None
            low = {}
            for _ in range(ROUNDS):
                t1 = time_torch(module, batch, tokens, lengths, min_s / 2)
                t = t1 if t is None else min(t, t1)
                if compare_torch.HAVE_ORT:
                    o1 = compare_torch.time_ort(onnx_path, batch, tokens,
                                                min_s / 2, lengths)
                    o = o1 if o is None else min(o, o1)
                if ort_int8:
                    q1 = compare_torch.time_ort(ort_int8, batch, tokens,
                                                min_s / 2, lengths)
                    oq = q1 if oq is None else min(oq, q1)
                c1 = compare_torch.time_ctxembed(timer, model_dir, batch, tokens,
                                                 min_s / 2, "auto", lengths)
                if c is None or c1["ms_per_batch"] < c["ms_per_batch"]:
                    c = c1
                for p, d in low_dirs.items():
                    l1 = compare_torch.time_ctxembed(timer, d, batch, tokens,
                                                     min_s / 2, "auto", lengths)
                    if p not in low or l1["ms_per_batch"] < low[p]:
                        low[p] = l1["ms_per_batch"]
            ms = c["ms_per_batch"]
            row = {"tokens": "8-128" if lengths else tokens, "batch": batch,
                   "mixed": bool(lengths), "isa": c["isa"],
                   "torch_ms": t * 1e3, "ort_ms": o * 1e3 if o else None,
                   "ctxembed_ms": ms, "ctxembed_sps": batch / ms * 1e3,
                   "ctxembed_gflops": c["gflops"],
                   "vs_torch": t * 1e3 / ms,
                   "vs_ort": o * 1e3 / ms if o else None,
                   "ort_int8_ms": oq * 1e3 if oq else None}
            for p, low_ms in low.items():
                row[p + "_ms"] = low_ms
                row[p + "_vs_fp32"] = ms / low_ms
                row[p + "_vs_ort"] = o * 1e3 / low_ms if o else None
            row["int8_vs_ort_int8"] = oq * 1e3 / low["int8"] if oq else None
            rows.append(row)
            print(json.dumps(row), flush=True)
    sgemm.append(compare_torch.measure_sgemm_gflops())
    write_report(rows, args, max(sgemm), quality)


def ort_int8_quality(fp32_path, int8_path):
    """ONNX Runtime's int8 model against its fp32 one on the mixed-length
    batch of 32: cosine of each sentence vector."""
    import numpy as np
    tokens, batch, lengths = cases()[-1]
    out = []
    for path in (fp32_path, int8_path):
        r = subprocess.run(["node", compare_torch.ORT_TIMER, path, str(batch),
                            str(tokens), "0", "2", ",".join(map(str, lengths))],
                           capture_output=True, text=True, check=True,
                           env=dict(os.environ, ORT_PRINT_OUTPUT="1"))
        out.append(np.array(json.loads(r.stdout)["output"]).reshape(batch, -1))
    a, b = out
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"sentences": batch, "min_cosine": float(cos.min()),
            "mean_cosine": float(cos.mean())}


def reduced_quality(build_dir, fp32_dir, low_dirs, vocab):
    """Sentence vectors of the directories through ctxembed-cli --local on
    256 sentences of 1..126 random words: cosine of each reduced-precision
    vector to its fp32 one."""
    import numpy as np
    rng = random.Random(7)
    texts = [" ".join(rng.choice(vocab[5:]) for _ in range(rng.randint(1, 126)))
             for _ in range(256)]
    cli = os.path.join(build_dir, "tools", "ctxembed-cli")
    out = {}
    for name, directory in [("fp32", fp32_dir)] + list(low_dirs.items()):
        r = subprocess.run([cli, "embed", "--local", "--model_dir=" + directory],
                           input="\n".join(texts) + "\n", capture_output=True,
                           text=True, check=True)
        out[name] = np.array([json.loads(l)["embedding"]
                              for l in r.stdout.splitlines()])
    res = {"sentences": len(texts)}
    a = out["fp32"]
    for p in low_dirs:
        b = out[p]
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        res[p] = {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}
    return res


def write_report(rows, args, sgemm_gflops, quality):
    out_dir = os.path.join(ROOT, "bench", "results")
    with open(os.path.join(out_dir, "transformer.json"), "w") as f:
        json.dump({"sgemm_gflops": sgemm_gflops, "rows": rows,
                   "reduced_quality": quality}, f, indent=1)
    lines = [
        "## Transformer encoder (BERT, MiniLM-L6 shape)",
        "",
        "Hidden 384, 6 layers, 12 heads, intermediate 1536, random weights; "
        "word-embedding lookup, encoder, mean pooling and normalization; same "
        "weights, same run. Written by `bench/compare_bert.py%s` on %s, %s "
        "(CPU level %s), %d cores; PyTorch %s (torch.set_num_threads(2), "
        "no_grad; Hugging Face BertModel's operations, padded batch with the "
        "attention mask); ONNX Runtime %s (onnxruntime-node, 2 intra-op "
        "threads, all graph optimizations, torch.onnx.export opset 14); "
        "ctxembed packs sentences without padding. %d interleaved rounds; "
        "the best median of each side." % (
            " --quick" if args.quick else "", time.strftime("%Y-%m-%d"),
            compare_torch.cpu_name(), compare_torch.cpu_level(),
            os.cpu_count(), torch.__version__,
            "1.20.1" if compare_torch.HAVE_ORT else "(not installed)", ROUNDS),
        "",
        "GFLOP/s counts the dense layers and attention of the real tokens "
        "(2 flops per multiply-add); the machine's sgemm rate in the same run "
        "(OpenBLAS, 2 threads, 2048^3, best of 5) is %.0f GFLOP/s, the ceiling "
        "for every side." % sgemm_gflops,
        "",
        "| tokens | batch | PyTorch ms | ONNX Runtime ms | ctxembed ms | "
        "ctxembed sentences/s | ctxembed GFLOP/s | % of sgemm | vs PyTorch | "
        "vs ONNX Runtime |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| %s | %d | %.2f | %s | %.2f | %.0f | %.1f | %.0f%% | %.2fx "
                     "| %s |" % (
                         r["tokens"], r["batch"], r["torch_ms"],
                         "%.2f" % r["ort_ms"] if r["ort_ms"] else "-",
                         r["ctxembed_ms"], r["ctxembed_sps"],
                         r["ctxembed_gflops"],
                         100 * r["ctxembed_gflops"] / sgemm_gflops,
                         r["vs_torch"],
                         "%.2fx" % r["vs_ort"] if r["vs_ort"] else "-"))
    lines += ["", "Reduced precision, an opt-in per model (`ctxembed.json`: "
              "`{\"precision\": \"bf16\"}` or `\"int8\"` beside the model's "
              "files): the dense layers' weights in bfloat16 (%s) or int8 with "
              "dynamic quantization of their inputs (%s); attention, LayerNorm "
              "and GELU stay fp32. Against the peers in fp32." % (
                  "VDPBF16PS, AVX512_BF16" if compare_torch.cpu_has_bf16()
                  else "this CPU has no AVX512_BF16: rounded weights on the "
                  "fp32 kernels",
                  "VPDPBUSD, AVX512_VNNI" if compare_torch.cpu_has_flag(
                      "avx512_vnni") else "this CPU has no AVX512_VNNI: the "
                  "int8-rounded weights on the fp32 kernels"), "",
              "| tokens | batch | ONNX Runtime fp32 ms | ctxembed fp32 ms | "
              "bf16 ms | bf16 vs fp32 | bf16 vs ONNX Runtime | int8 ms | int8 "
              "vs fp32 | int8 vs ONNX Runtime | ONNX Runtime int8 ms | int8 vs "
              "ONNX Runtime int8 |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [str(r["tokens"]), "%d" % r["batch"],
                 "%.2f" % r["ort_ms"] if r["ort_ms"] else "-",
                 "%.2f" % r["ctxembed_ms"]]
        for p in compare_torch.REDUCED:
            cells += ["%.2f" % r[p + "_ms"], "%.2fx" % r[p + "_vs_fp32"],
                      "%.2fx" % r[p + "_vs_ort"] if r[p + "_vs_ort"] else "-"]
        q = r["ort_int8_ms"]
        cells += ["%.2f" % q if q else "-",
                  "%.2fx" % r["int8_vs_ort_int8"] if q else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + ["Sentence-vector cosine to fp32 on %d sentences of 1-126 "
                     "words, %s: min %.6f, mean %.6f." % (
                         quality["sentences"], p, quality[p]["min_cosine"],
                         quality[p]["mean_cosine"])
                     for p in compare_torch.REDUCED]
    if "ort_int8" in quality:
        lines += ["ONNX Runtime int8 (`bench/ort/quantize_dynamic.py`: the "
                  "MatMuls with constant weights as its quantize_dynamic writes "
                  "them, per-channel int8 weights, inputs quantized per tensor), "
                  "against its fp32 on the mixed-length batch: cosine min %.6f, "
                  "mean %.6f." % (quality["ort_int8"]["min_cosine"],
                                  quality["ort_int8"]["mean_cosine"])]
    else:
        lines += ["ONNX Runtime int8: not measured (needs python3-onnx and "
                  "onnxruntime-node)."]

    def worst(key, batch):
        return min(r[key] for r in rows
                   if r["batch"] == batch and not r["mixed"])
    if compare_torch.HAVE_ORT:
        b32, b1 = worst("vs_ort", 32), worst("vs_ort", 1)

        def verdict(x, target):
            return "%.2fx (%s)" % (x, "met" if x >= target else "NOT met")
        lines += ["", "- Targets, fp32: batch 32 at least 1.2x ONNX Runtime: "
                  "worst %s; batch 1 at least 1.3x: worst %s." % (
                      verdict(b32, 1.2), verdict(b1, 1.3))]
        lines += ["- Targets, %s (opt-in) against ONNX Runtime fp32: batch 32 "
                  "worst %s; batch 1 worst %s." % (
                      p, verdict(worst(p + "_vs_ort", 32), 1.2),
                      verdict(worst(p + "_vs_ort", 1), 1.3))
                  for p in compare_torch.REDUCED]
        if all(r["ort_int8_ms"] for r in rows):
            lines += ["- Targets at equal precision, int8 against ONNX Runtime "
                      "int8: batch 32 worst %s; batch 1 worst %s." % (
                          verdict(worst("int8_vs_ort_int8", 32), 1.2),
                          verdict(worst("int8_vs_ort_int8", 1), 1.3))]
        # The fp32 targets against the machine's ceiling (the kernel peak,
        # bench/gemm_bench x 2 cores, when there is one, else OpenBLAS's
        # sgemm rate): ONNX Runtime's share of it (ctxembed's rate over the
        # ratio) times the target ratio.
        peak = compare_torch.measure_kernel_peak(args.build, rows[0]["isa"])
        ceiling = peak or sgemm_gflops
        need = ["%s tokens, batch %d: ONNX Runtime at %.0f%%, so %.1fx needs "
                "%.0f%%" % (r["tokens"], r["batch"], 100 * share, t,
                            100 * t * share)
                for r in rows if not r["mixed"]
                for t in [1.2 if r["batch"] == 32 else 1.3]
                for share in [r["ctxembed_gflops"] / r["vs_ort"] / ceiling]]
        lines += ["- What each fp32 target asks of the machine (%s of %s; "
                  "above 100%% is out of reach on this machine). ctxembed's "
                  "fp32 lead comes from no padding (the mixed-length row) and "
                  "from lower overhead per step (batch 1, short sentences)." % (
                      "; ".join(need),
                      "the kernel peak, %.0f GFLOP/s (ctxembed's GEMM kernel "
                      "alone, `bench/gemm_bench`, one core, times 2)" % peak
                      if peak else "the sgemm rate")]
    compare_torch.write_section(os.path.join(out_dir, "encoders.md"),
                                compare_torch.TRANSFORMER_MARK, lines)


if __name__ == "__main__":
    main()
