#!/usr/bin/python3
"""HTTP against gRPC on the same server, in the same run: bench/loadgen's
closed loop with 64 callers and single-sentence requests, over gRPC (one
channel) and over HTTP/1.1 (/v1/embeddings, 64 keep-alive connections),
interleaved rounds, the better of each side reported. Writes the section
"HTTP against gRPC" of bench/results/serving.md (and
bench/results/http.json).

Usage: bench/http_vs_grpc.py [--build build] [--rounds 3] [--seconds 8]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
os.environ.setdefault("CTXEMBED_SOURCE_DIR", ROOT)
import harness  # noqa: E402

MODEL = os.path.join(ROOT, "models", "default")
sys.path.insert(0, os.path.dirname(__file__))
from reload import SENTENCES  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    args = ap.parse_args()
    os.environ["CTXEMBED_BUILD_DIR"] = args.build
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sentences = os.path.join(tmp, "sentences.txt")
        with open(sentences, "w") as f:
            f.write("\n".join(SENTENCES) + "\n")
        server = harness.Server([MODEL], metrics=False)
        try:
            for rnd in range(args.rounds):
                for proto in ("grpc", "http"):
                    cmd = [os.path.join(args.build, "bench", "loadgen"),
                           "--target=127.0.0.1:%d" % server.grpc_port,
                           "--sentences=" + sentences, "--concurrency=64",
                           "--max_per_request=1", "--warmup_s=1",
                           "--duration_s=%g" % args.seconds,
                           "--label=%s %d" % (proto, rnd + 1)]
                    if proto == "http":
                        cmd.append("--http_target=127.0.0.1:%d" %
                                   server.http_port)
                    out = subprocess.run(cmd, capture_output=True, text=True,
                                         check=True)
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    r["protocol"] = proto
                    rows.append(r)
                    print(json.dumps(r), flush=True)
        finally:
            server.close()
    best = {p: max((r for r in rows if r["protocol"] == p),
                   key=lambda r: r["requests_per_s"]) for p in ("grpc", "http")}
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.*)", cpu)
    lines = [
        "## 6. HTTP against gRPC",
        "",
        "`bench/http_vs_grpc.py` on %s (%s, %d cores): one server on `models/default`, "
        "loadgen closed loop, 64 callers, one sentence per request (6 "
        "sentences of 6-13 words), %g s rounds, gRPC and HTTP interleaved "
        "(%d rounds each). gRPC: one channel, `Embed`. HTTP: 64 keep-alive "
        "connections, `POST /v1/embeddings`, answers read whole but their "
        "JSON not parsed (the gRPC client does decode its protobuf "
        "answers; both clients share the server's 2 cores)." % (time.strftime("%Y-%m-%d"),
                              model.group(1).strip() if model else "?",
                              os.cpu_count(), args.seconds, args.rounds),
        "",
        "| round | requests/s | p50 ms | p90 ms | p99 ms | codes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| %s | %.0f | %.2f | %.2f | %.2f | %s |" % (
            r["label"], r["requests_per_s"], r["p50_ms"], r["p90_ms"],
            r["p99_ms"], json.dumps(r["codes"])))
    ratio = best["http"]["requests_per_s"] / best["grpc"]["requests_per_s"]
    lines += ["", "- best HTTP / best gRPC requests/s: **%.0f%%** (target >= "
              "80%%)" % (100 * ratio), ""]
    section = "\n".join(lines)
    path = os.path.join(ROOT, "bench", "results", "serving.md")
    with open(path) as f:
        text = f.read()
    text = re.sub(r"\n## 6\. HTTP against gRPC\n.*?(?=\n## |\Z)", "", text,
                  flags=re.S)
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n\n" + section)
    with open(os.path.join(ROOT, "bench", "results", "http.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(section)


if __name__ == "__main__":
    main()
