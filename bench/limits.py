#!/usr/bin/python3
"""Abusive requests against the real server, one fresh server per case:
peak memory of the server process (VmHWM), the time until the abusive call
is answered and with what, and the worst latency of small calls (an Embed
and a health check, one after the other) made meanwhile. Writes
bench/results/limits.md (and .json).

Server: build/server/ctxembed-server on models/default, default flags
unless the case names others; everything on 127.0.0.1.

Usage: bench/limits.py [--build build]
"""
import argparse
import json
import os
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
os.environ.setdefault("CTXEMBED_SOURCE_DIR", ROOT)
import harness  # noqa: E402
from harness import embedder_pb2, grpc, health_pb2  # noqa: E402

MODEL = os.path.join(ROOT, "models", "default")


def rss_mb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_case(name, flags, calls):
    """`calls`: functions of a stub, run concurrently; each returns nothing
    or raises grpc.RpcError."""
    server = harness.Server([MODEL], *flags)
    try:
        base = rss_mb(server.proc.pid, "VmRSS")
        stop = threading.Event()
        worst = [0.0]
        probes = [0]

        def probe():
            while not stop.is_set():
                t = time.monotonic()
                try:
                    server.health.Check(health_pb2.HealthCheckRequest(), timeout=30)
                    server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a small call"]),
                                      timeout=30)
                except grpc.RpcError:
                    pass
                worst[0] = max(worst[0], time.monotonic() - t)
                probes[0] += 1
                time.sleep(0.02)
        results = [None] * len(calls)

        def run(i, call):
            t = time.monotonic()
            try:
                call(server.stub)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            results[i] = (code, time.monotonic() - t)
        prober = threading.Thread(target=probe)
        prober.start()
        time.sleep(0.2)
        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.2)
        stop.set()
        prober.join()
        row = {"case": name, "flags": " ".join(flags),
               "codes": sorted({r[0] for r in results}),
               "seconds": max(r[1] for r in results),
               "peak_rss_mb": rss_mb(server.proc.pid, "VmHWM"),
               "rss_after_mb": rss_mb(server.proc.pid, "VmRSS"),
               "base_rss_mb": base, "small_call_worst_s": worst[0],
               "small_calls": probes[0]}
    finally:
        server.close()
    print(json.dumps(row), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    harness.SERVER = os.path.join(args.build, "server", "ctxembed-server")
    many_words = "a " * (20 << 20)           # 40 MB, 20M tokens
    long_pair = embedder_pb2.Pair(a="w " * 256, b="v " * 256)
    cases = [
        ("gzip request of ~50 KB inflating to 50 MB", [],
         [lambda s: s.Embed(embedder_pb2.EmbedRequest(inputs=["a " * (25 << 20)]),
                            compression=grpc.Compression.Gzip, timeout=60)]),
        ("Embed of 40 MB of one-letter words", [],
         [lambda s: s.Embed(embedder_pb2.EmbedRequest(inputs=[many_words]), timeout=60)]),
        ("Tokenize of 60 MB", ["--max_message_bytes=%d" % (96 << 20)],
         [lambda s: s.Tokenize(embedder_pb2.TokenizeRequest(inputs=["ab " * (20 << 20)]),
                               timeout=60)]),
        ("two 20 MB words at once", [],
         [lambda s: s.Embed(embedder_pb2.EmbedRequest(inputs=["x" * (20 << 20)]),
                            timeout=60)] * 2),
        ("8 concurrent Score of 256 pairs x 256 tokens", [],
         [lambda s: s.Score(embedder_pb2.ScoreRequest(pairs=[long_pair] * 256),
                            timeout=120)] * 8),
        ("EmbedTokens answer over the message limit (256 x 256 tokens, 4 MB limit)",
         ["--max_message_bytes=%d" % (4 << 20)],
         [lambda s: s.EmbedTokens(embedder_pb2.EmbedRequest(inputs=["w " * 256] * 256),
                                  timeout=60)]),
        ("model name of 10 KB", [],
         [lambda s: s.Embed(embedder_pb2.EmbedRequest(inputs=["a"], model="x" * 10000),
                            timeout=10)]),
    ]
    rows = [run_case(*c) for c in cases]
    out_dir = os.path.join(ROOT, "bench", "results")
    with open(os.path.join(out_dir, "limits.json"), "w") as f:
        json.dump(rows, f, indent=1)
    lines = [
        "# Limits under abusive requests",
        "",
        "`bench/limits.py` on %s: one fresh `ctxembed-server` per case on "
        "`models/default` (default flags unless listed), the abusive calls run "
        "concurrently while a prober makes small calls (a health check, then "
        "an Embed of one short sentence, every 20 ms). Peak RSS is the server "
        "process's VmHWM; idle, it is about %.0f MB." % (
            time.strftime("%Y-%m-%d"), min(r["base_rss_mb"] for r in rows)),
        "",
        "| case | flags | answered with | time to answer s | peak RSS MB | RSS after MB | worst small call s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| %s | %s | %s | %.2f | %.0f | %.0f | %.3f |" % (
            r["case"], r["flags"] or "-", ", ".join(r["codes"]), r["seconds"],
            r["peak_rss_mb"], r["rss_after_mb"], r["small_call_worst_s"]))
    worst_peak = max(r["peak_rss_mb"] for r in rows)
    worst_small = max(r["small_call_worst_s"] for r in rows)
    lines += ["", "- Targets: no case above 600 MB peak (Score flood: 1 GB): "
              "worst %.0f MB; a small concurrent call within 1 s: worst %.3f s."
              % (worst_peak, worst_small)]
    with open(os.path.join(out_dir, "limits.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
