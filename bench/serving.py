#!/usr/bin/python3
"""Serving benchmark: the real server under load from bench/loadgen, on this
machine's loopback, writing bench/results/serving.md (and .json).

Model: a bidirectional LSTM (input 100, hidden 256, 1 layer) with random
weights over a 20k-word vocabulary from WordNet, exported with
tools/export_torch.py. Sentences: WordNet glosses (Debian wordnet-base).

1. Throughput at concurrency 64, one ~16-token sentence per request, with
   batching and with --max_batch_sentences=1, as unary Embed calls; and
   with batching over 64 EmbedStream calls (one request in flight on each).
2. Latency against offered load, 10% to 100% of capacity, open loop.
3. Overload at 2x capacity: goodput, p99 of accepted requests, how fast
   refusals come back, server memory before and after.
4. Overhead: end-to-end sentences/s against the model alone at the batch
   size the server ran, for unary calls and for streams.

Usage: bench/serving.py [--quick] [--build build]
"""
import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
QUEUE_BUDGET_US = 50000  # --max_queue_wait_micros for the overload runs
sys.path.insert(0, os.path.join(ROOT, "tools"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def glosses():
    out = []
    with open("/usr/share/wordnet/data.noun", encoding="latin-1") as f:
        for line in f:
            if "|" in line and not line.startswith("  "):
                g = line.split("|", 1)[1].split(";")[0].strip().strip('"')
                if g:
                    out.append(g.lower())
    return out


def make_model(out_dir, texts):
    import torch
    import export_torch
    from torch_encoder import TorchEncoder
    counts = {}
    for t in texts:
        for w in t.split():
            counts[w] = counts.get(w, 0) + 1
    vocab = ["<unk>"] + sorted(counts, key=lambda w: -counts[w])[:19999]
    torch.manual_seed(3)
    tower = {"embedding": {"kind": "table", "tensor": "embed.weight",
                           "vocab": "vocab.txt", "unk_token": "<unk>"},
             "encoder": [{"kind": "lstm", "prefix": "rnn", "input_size": 100,
                          "hidden_size": 256, "num_layers": 1,
                          "bidirectional": True}],
             "pooling": "mean"}
    enc = TorchEncoder(tower, vocab=vocab, embedding_dim=100)
    export_torch.export_model(out_dir, dict(tower, name="bilstm-bench",
                                            max_tokens=128),
                              enc.state_dict(), vocab=vocab)


class Server:
    def __init__(self, build, model_dir, *flags):
        self.port, self.mport = free_port(), free_port()
        self.proc = subprocess.Popen(
            [os.path.join(build, "server", "ctxembed-server"),
             "--model_dir=" + model_dir,
             "--grpc_address=127.0.0.1:%d" % self.port,
             "--metrics_address=127.0.0.1:%d" % self.mport] + list(flags),
            stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "ready:" in line:
                break
        else:
            raise RuntimeError("server did not start")

    def metrics(self):
        url = "http://127.0.0.1:%d/metrics" % self.mport
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    def rss_mb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def minor_faults(self):
        """Minor page faults the server has taken so far (proc(5) field
        10): memory the heap gave back to the system and touched again."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])

    def cpu_seconds(self):
        """User + system CPU time the server has used so far."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime, fields 14 and 15 of proc(5) (the first two,
        # pid and comm, are before the split).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def metric(text, name):
    m = re.search(r"^%s(\{[^}]*\})? ([0-9.e+-]+)$" % re.escape(name), text, re.M)
    return float(m.group(2)) if m else 0.0


def loadgen(build, server, sentences, label, **kw):
    args = [os.path.join(build, "bench", "loadgen"),
            "--target=127.0.0.1:%d" % server.port, "--sentences=" + sentences,
            "--label=" + label]
    args += ["--%s=%s" % (k, v) for k, v in kw.items()]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server.cpu_seconds()
    faults_before = server.minor_faults()
    start = time.monotonic()
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # Cores each side kept busy on average: the two share this machine.
    r["loadgen_cores"] = (after.ru_utime + after.ru_stime - before.ru_utime -
                          before.ru_stime) / wall
    r["server_cores"] = (server.cpu_seconds() - server_before) / wall
    # Per request, warm-up included (its requests are not counted: a bound).
    r["server_faults_per_request"] = (
        (server.minor_faults() - faults_before) /
        max(1.0, r["requests_per_s"] * r["duration_s"]))
    return r


def mean_batch(before, after):
    s = metric(after, "ctxembed_batch_size_sum") - metric(before, "ctxembed_batch_size_sum")
    c = metric(after, "ctxembed_batch_size_count") - metric(before, "ctxembed_batch_size_count")
    return s / c if c else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    dur = 3 if args.quick else 8
    texts = glosses()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        make_model(model_dir, texts)
        near16 = os.path.join(tmp, "near16.txt")
        mixed = os.path.join(tmp, "mixed.txt")
        with open(near16, "w") as f:
            f.write("\n".join(t for t in texts if 14 <= len(t.split()) <= 18) + "\n")
        with open(mixed, "w") as f:
            f.write("\n".join(texts[:20000]) + "\n")

        # 1. Batching on / off at concurrency 64; batching over streams.
        for name, rpc, flags in (
                ("batching", "unary", []),
                ("no batching", "unary", ["--max_batch_sentences=1"]),
                ("batching, streams", "stream", [])):
            srv = Server(args.build, model_dir, *flags)
            before = srv.metrics()
            r = loadgen(args.build, srv, near16, name, mode="closed",
                        concurrency=64, duration_s=dur, rpc=rpc)
            r["mean_batch"] = mean_batch(before, srv.metrics())
            results["1 " + name] = r
            srv.stop()
        capacity = results["1 batching"]["requests_per_s"]

        # 2. Latency against offered load (open loop), and 3. overload.
        srv = Server(args.build, model_dir, "--max_queue_sentences=256")
        for pct in (10, 25, 50, 75, 90, 100):
            results["2 %d%%" % pct] = loadgen(
                args.build, srv, near16, "%d%% load" % pct, mode="open",
                rate=capacity * pct / 100.0, duration_s=dur)
        srv.stop()
        # Overload with one sentence per request, and with 1-8 per request
        # (capacity measured again for that mix): per-call gRPC work, on the
        # same 2 cores as the load generator, weighs less with the latter.
        for name, per_request in (("single", 1), ("mix", 8)):
            srv = Server(args.build, model_dir, "--max_queue_sentences=256",
                         "--max_queue_wait_micros=%d" % QUEUE_BUDGET_US)
            cap = loadgen(args.build, srv, near16, "capacity " + name,
                          mode="closed", concurrency=64, duration_s=dur,
                          max_per_request=per_request)
            rss0 = srv.rss_mb()
            before = srv.metrics()
            r = loadgen(args.build, srv, near16, "2x overload " + name,
                        mode="open", rate=2 * cap["requests_per_s"],
                        duration_s=dur, deadline_ms=1000,
                        max_per_request=per_request)
            after = srv.metrics()
            r["capacity_sentences_per_s"] = cap["sentences_per_s"]
            r["rss_before_mb"], r["rss_after_mb"] = rss0, srv.rss_mb()
            r["mean_batch"] = mean_batch(before, after)
            r["per_request"] = per_request
            results["3 overload " + name] = r
            srv.stop()

        # 4. The model alone at the batch size the server ran in run 1,
        # and in the streams' run.
        for key, run in (("4 model only", "1 batching"),
                         ("4 model only, streams", "1 batching, streams")):
            same_batch = max(1, int(round(results[run]["mean_batch"])))
            timer = subprocess.run(
                [os.path.join(args.build, "bench", "encoder_timer"),
                 "--model_dir=" + model_dir, "--batch=%d" % same_batch,
                 "--tokens=16",
                 "--min_seconds=%d" % (1 if args.quick else 3)],
                capture_output=True, text=True, check=True)
            results[key] = json.loads(timer.stdout)
    write(results, capacity, args)


def write(results, capacity, args):
    out = os.path.join(ROOT, "bench", "results")
    with open(os.path.join(out, "serving.json"), "w") as f:
        json.dump(results, f, indent=1)
    on, off = results["1 batching"], results["1 no batching"]
    streams = results["1 batching, streams"]
    lines = [
        "# Serving under load",
        "",
        "`bench/serving.py%s` on %s: the real `ctxembed-server` (bi-LSTM, "
        "input 100, hidden 256, random weights, 20k-word table) driven by "
        "`bench/loadgen` over loopback on the same 2-core machine (the load "
        "generator takes CPU from the server too). One sentence of 14-18 "
        "tokens (WordNet glosses) per request. Default batching flags "
        "(max_batch_sentences 32, max_batch_tokens 4096, "
        "max_queue_delay_micros 2000, one worker per core)."
        % (" --quick" if args.quick else "", time.strftime("%Y-%m-%d")),
        "",
        "## 1. Batching at concurrency 64 (closed loop)",
        "",
        "| run | requests/s | mean batch | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
        "| batching | %.0f | %.1f | %.2f | %.2f |" % (on["requests_per_s"], on["mean_batch"], on["p50_ms"], on["p99_ms"]),
        "| max_batch_sentences=1 | %.0f | %.1f | %.2f | %.2f |" % (off["requests_per_s"], off["mean_batch"], off["p50_ms"], off["p99_ms"]),
        "| batching, 64 EmbedStream calls | %.0f | %.1f | %.2f | %.2f |" % (streams["requests_per_s"], streams["mean_batch"], streams["p50_ms"], streams["p99_ms"]),
        "",
        "Batching serves **%.1fx** the unbatched throughput." % (on["requests_per_s"] / max(off["requests_per_s"], 1e-9)),
        "",
        "## 2. Latency against offered load (open loop, Poisson arrivals)",
        "",
        "Capacity = the batching throughput above, %.0f requests/s." % capacity,
        "",
        "| offered | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | codes |",
        "|---|---|---|---|---|---|---|",
    ]
    for pct in (10, 25, 50, 75, 90, 100):
        r = results["2 %d%%" % pct]
        lines.append("| %d%% (%.0f/s) | %.0f | %.2f | %.2f | %.2f | %.2f | %s |" % (
            pct, r["rate"], r["requests_per_s"], r["p50_ms"], r["p90_ms"],
            r["p99_ms"], r["p999_ms"], json.dumps(r["codes"])))
    lines += ["", "## 3. Overload at 2x capacity (open loop, max_queue_sentences "
              "256, max_queue_wait_micros %d, 1 s deadlines)" % QUEUE_BUDGET_US,
              ""]
    for name in ("single", "mix"):
        ov = results["3 overload " + name]
        cap = ov["capacity_sentences_per_s"]
        lines += [
            "**%s** (1-%d sentences per request; capacity %.0f sentences/s, "
            "offered %.0f requests/s):" % (name, ov["per_request"], cap, ov["rate"]),
            "",
            "- goodput: %.0f sentences/s = **%.0f%%** of capacity (target >= 90%%)"
            % (ov["sentences_per_s"], 100 * ov["sentences_per_s"] / cap),
            "- accepted requests: p50 %.2f ms, p99 %.2f ms (queue budget "
            "%.0f ms of estimated wait, plus the batch itself)"
            % (ov["p50_ms"], ov["p99_ms"], QUEUE_BUDGET_US / 1000.0),
            "- refusals %s; from the actual send they return in p50 %.3f ms, "
            "p99 %.3f ms (target < 1 ms); from the scheduled send, p50 %.3f ms, "
            "p99 %.3f ms" % (json.dumps(ov["codes"]), ov["error_sent_p50_ms"],
                             ov["error_sent_p99_ms"], ov["error_p50_ms"],
                             ov["error_p99_ms"]),
            "- mean batch %.1f; server RSS %.0f MB before, %.0f MB after" % (
                ov["mean_batch"], ov["rss_before_mb"], ov["rss_after_mb"]),
            "",
        ]
    lines += [
        "## 4. Overhead",
        "",
        "The model alone is `encoder_timer` at the mean batch of the run, 16 "
        "tokens, on both cores. Per core of server CPU: end to end per core "
        "the server used, against the model alone per core; the rest of the "
        "whole-machine gap is CPU the server did not get (the load "
        "generator's and the idle share).",
        "",
        "| calls | mean batch | end to end sentences/s | model alone | "
        "of the model alone | server cores | load generator | idle | "
        "per core of server CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run, model in (
            ("unary Embed (run 1)", on, results["4 model only"]),
            ("64 EmbedStream", streams, results["4 model only, streams"])):
        cores = os.cpu_count()
        lines.append(
            "| %s | %.1f | %.0f | %.0f | **%.0f%%** | %.2f | %.2f | %.2f | "
            "**%.0f%%** |" % (
                label, run["mean_batch"], run["sentences_per_s"],
                model["sentences_per_s"],
                100 * run["sentences_per_s"] / model["sentences_per_s"],
                run["server_cores"], run["loadgen_cores"],
                max(0.0, cores - run["server_cores"] - run["loadgen_cores"]),
                100 * (run["sentences_per_s"] / run["server_cores"]) /
                (model["sentences_per_s"] / cores)))
    lines += [
        "",
        "Target: end to end >= 85% of the model alone.",
        "",
        "- page faults of the server during run 1: %.2f per request (heap "
        "memory returned to the system between batches and touched again; "
        "see `--malloc_mmap_threshold_bytes` in server/main.cc)" %
        on["server_faults_per_request"],
    ]
    # Sections 5 and later come from bench/reload.py and
    # bench/http_vs_grpc.py: kept as they are.
    path = os.path.join(out, "serving.md")
    later = ""
    if os.path.exists(path):
        with open(path) as f:
            m = re.search(r"\n## 5\. .*", f.read(), flags=re.S)
            later = m.group(0) if m else ""
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + later)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
