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
import collections
import json
import os
import queue
import resource
import socket
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
    """`calls`: functions of the server (harness.Server), run concurrently;
    each returns nothing, a code name, or raises grpc.RpcError."""
    server = harness.Server([MODEL], *flags)
    try:
        base = rss_mb(server.proc.pid, "VmRSS")
        stop = threading.Event()
        worst = [0.0]
        probes = [0]
        refused = [0]

        def probe():
            while not stop.is_set():
                t = time.monotonic()
                try:
                    server.health.Check(health_pb2.HealthCheckRequest(), timeout=30)
                    server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a small call"]),
                                      timeout=30)
                except grpc.RpcError:
                    refused[0] += 1
                worst[0] = max(worst[0], time.monotonic() - t)
                probes[0] += 1
                time.sleep(0.02)
        results = [None] * len(calls)

        def run(i, call):
            t = time.monotonic()
            try:
                code = call(server)
                code = code if isinstance(code, str) else "OK"
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
               "small_calls": probes[0], "small_calls_failed": refused[0]}
    finally:
        server.close()
    print(json.dumps(row), flush=True)
    return row


def hold_http_connections(n):
    """Opens `n` HTTP connections at once and sends each a request, holding
    them open; returns the answers' codes ("HTTP 200", "HTTP 503")."""
    def call(server):
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1024, n + 1024))
        socks = []
        try:
            for _ in range(n):
                socks.append(socket.create_connection(
                    ("127.0.0.1", server.http_port), timeout=30))
            request = (b"POST /embed HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: 19"
                       b"\r\n\r\n{\"inputs\": \"a dog\"}")
            for sock in socks:
                sock.sendall(request)
            codes = collections.Counter()
            for sock in socks:
                head = sock.recv(64)
                codes["HTTP " + head.split(b" ")[1].decode()] += 1
            return ", ".join("%s x %d" % c for c in sorted(codes.items()))
        finally:
            for sock in socks:
                sock.close()
    return call


def hold_grpc_streams(n):
    """Opens `n` gRPC connections, each holding an EmbedStream; returns
    the codes their first answers got."""
    def call(server):
        target = "127.0.0.1:%d" % server.grpc_port
        channels, queues, calls = [], [], []
        codes = collections.Counter()
        try:
            for _ in range(n):
                channel = grpc.insecure_channel(
                    target, options=[("grpc.use_local_subchannel_pool", 1)])
                channels.append(channel)
                q = queue.Queue()
                q.put(embedder_pb2.EmbedRequest(inputs=["a dog"]))
                queues.append(q)
                replies = harness.embedder_pb2_grpc.EmbedderStub(
                    channel).EmbedStream(iter(q.get, None), timeout=60)
                calls.append(replies)  # a dropped call is cancelled
                try:
                    next(replies)
                    codes["OK"] += 1
                except grpc.RpcError as e:
                    codes[e.code().name] += 1
            return ", ".join("%s x %d" % c for c in sorted(codes.items()))
        finally:
            for q in queues:
                q.put(None)
            for channel in channels:
                channel.close()
    return call


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    harness.SERVER = os.path.join(args.build, "server", "ctxembed-server")
    many_words = "a " * (20 << 20)           # 40 MB, 20M tokens
    long_pair = embedder_pb2.Pair(a="w " * 256, b="v " * 256)
    cases = [
        ("gzip request of ~50 KB inflating to 50 MB", [],
         [lambda s: s.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a " * (25 << 20)]),
                            compression=grpc.Compression.Gzip, timeout=60)]),
        ("Embed of 40 MB of one-letter words", [],
         [lambda s: s.stub.Embed(embedder_pb2.EmbedRequest(inputs=[many_words]), timeout=60)]),
        ("Tokenize of 60 MB", ["--max_message_bytes=%d" % (96 << 20)],
         [lambda s: s.stub.Tokenize(embedder_pb2.TokenizeRequest(inputs=["ab " * (20 << 20)]),
                               timeout=60)]),
        ("two 20 MB words at once", [],
         [lambda s: s.stub.Embed(embedder_pb2.EmbedRequest(inputs=["x" * (20 << 20)]),
                            timeout=60)] * 2),
        ("8 concurrent Score of 256 pairs x 256 tokens", [],
         [lambda s: s.stub.Score(embedder_pb2.ScoreRequest(pairs=[long_pair] * 256),
                            timeout=120)] * 8),
        ("EmbedTokens answer over the message limit (256 x 256 tokens, 4 MB limit)",
         ["--max_message_bytes=%d" % (4 << 20)],
         [lambda s: s.stub.EmbedTokens(embedder_pb2.EmbedRequest(inputs=["w " * 256] * 256),
                                  timeout=60)]),
        ("3000 HTTP connections held at once", [],
         [hold_http_connections(3000)]),
        ("400 gRPC connections each holding a stream", ["--max_connections=256"],
         [hold_grpc_streams(400)]),
        ("model name of 10 KB", [],
         [lambda s: s.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a"], model="x" * 10000),
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
        "| case | flags | answered with | time to answer s | peak RSS MB | RSS after MB | worst small call s | small calls refused |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| %s | %s | %s | %.2f | %.0f | %.0f | %.3f | %d of %d |" % (
            r["case"], r["flags"] or "-", ", ".join(r["codes"]), r["seconds"],
            r["peak_rss_mb"], r["rss_after_mb"], r["small_call_worst_s"],
            r["small_calls_failed"], r["small_calls"]))
    worst_peak = max(r["peak_rss_mb"] for r in rows)
    worst_small = max(r["small_call_worst_s"] for r in rows)
    lines += ["", "- Targets: no case above 600 MB peak (Score flood: 1 GB): "
              "worst %.0f MB; a small concurrent call within 1 s: worst %.3f s."
              % (worst_peak, worst_small),
              "- Connections (`--max_connections`, default 1024 per port): the "
              "HTTP port counts open connections and answers the ones beyond "
              "with 503 and Retry-After; the gRPC port counts connections "
              "holding calls (gRPC 1.51 exposes no accepted-connection count) "
              "and refuses calls on further ones with RESOURCE_EXHAUSTED. "
              "That includes the prober's connection when it holds no call "
              "between probes: the refused small calls in that row. Health "
              "checks are never refused."]
    with open(os.path.join(out_dir, "limits.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
