#!/usr/bin/python3
"""Hot reload under load: the real server on a versioned copy of
models/default, bench/loadgen's closed loop (32 callers, 1-4 sentences per
request) for rounds of steady load and rounds during which a new version
is published every second (written as .N.partial, renamed to N; N-2
removed), interleaved. Reports failed calls, p50/p99 latency of each kind of
round, the server's RSS with one model, during swaps and after the replaced
versions are released, and writes the section "Reload under load" of
bench/results/serving.md (and bench/results/reload.json).

Usage: bench/reload.py [--build build] [--rounds 2] [--seconds 10]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
os.environ.setdefault("CTXEMBED_SOURCE_DIR", ROOT)
import harness  # noqa: E402

MODEL = os.path.join(ROOT, "models", "default")
SENTENCES = [
    "the cat sat on the mat",
    "who wrote the book about the war and the peace that followed it",
    "a man is playing a guitar on the street while people walk past",
    "how do I open a file in python and read it line by line",
    "the quick brown fox jumps over the lazy dog",
    "stock markets fell sharply after the announcement of new tariffs",
]


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metric(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def scrape(server):
    url = "http://127.0.0.1:%d/metrics" % server.metrics_port
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def publish(versions, n):
    staging = os.path.join(versions, ".%d.partial" % n)
    shutil.copytree(MODEL, staging)
    os.rename(staging, os.path.join(versions, str(n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    os.environ["CTXEMBED_BUILD_DIR"] = args.build
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sentences = os.path.join(tmp, "sentences.txt")
        with open(sentences, "w") as f:
            f.write("\n".join(SENTENCES) + "\n")
        versions = os.path.join(tmp, "m")
        os.mkdir(versions)
        publish(versions, 1)
        server = harness.Server([versions], "--model_poll_interval_ms=200")
        next_version = [2]
        try:
            one_model_rss = rss_mb(server.proc.pid)
            for rnd in range(args.rounds):
                for kind in ("steady", "swapping"):
                    stop = threading.Event()
                    samples = []
                    swaps = [0]

                    def swapper():
                        while not stop.wait(1.0):
                            n = next_version[0]
                            next_version[0] += 1
                            publish(versions, n)
                            old = os.path.join(versions, str(n - 2))
                            if os.path.isdir(old):
                                shutil.rmtree(old)
                            swaps[0] += 1

                    def sampler():
                        while not stop.wait(0.1):
                            samples.append(rss_mb(server.proc.pid))

                    threads = [threading.Thread(target=sampler)]
                    if kind == "swapping":
                        threads.append(threading.Thread(target=swapper))
                    for t in threads:
                        t.start()
                    out = subprocess.run(
                        [os.path.join(args.build, "bench", "loadgen"),
                         "--target=127.0.0.1:%d" % server.grpc_port,
                         "--sentences=" + sentences, "--concurrency=32",
                         "--max_per_request=4", "--warmup_s=0.5",
                         "--duration_s=%g" % args.seconds,
                         "--label=%s %d" % (kind, rnd + 1)],
                        capture_output=True, text=True, check=True)
                    stop.set()
                    for t in threads:
                        t.join()
                    report = json.loads(out.stdout.strip().splitlines()[-1])
                    # Replaced versions are released once their calls end.
                    text = scrape(server)
                    loaded = metric(text, 'ctxembed_model_reloads_total'
                                    '{model="ctx-sif-bilstm",result="loaded"}')
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline:
                        unloaded = metric(
                            scrape(server), 'ctxembed_model_reloads_total'
                            '{model="ctx-sif-bilstm",result="unloaded"}')
                        if unloaded == loaded - 1:
                            break
                        time.sleep(0.1)
                    time.sleep(0.5)
                    rows.append({
                        "round": "%s %d" % (kind, rnd + 1),
                        "swaps": swaps[0],
                        "requests_per_s": report["requests_per_s"],
                        "p50_ms": report["p50_ms"],
                        "p99_ms": report["p99_ms"],
                        "codes": report["codes"],
                        "peak_rss_mb": max(samples) if samples else 0,
                        "rss_after_release_mb": rss_mb(server.proc.pid),
                        "versions_loaded": loaded,
                        "versions_unloaded": unloaded,
                    })
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            server.close()
    failed = sum(n for r in rows for c, n in r["codes"].items() if c != "OK")
    lines = [
        "## 5. Reload under load",
        "",
        "`bench/reload.py` on %s: the server on a versioned copy of "
        "`models/default` (%.0f MB of files; `--model_poll_interval_ms=200`), "
        "loadgen closed loop, 32 callers, 1-4 sentences per request, %g s "
        "rounds; in \"swapping\" rounds a new version is published every "
        "second (copied as `.N.partial`, renamed to `N`, version N-2 "
        "removed). RSS with one model loaded, before any round: %.0f MB." % (
            time.strftime("%Y-%m-%d"),
            sum(os.path.getsize(os.path.join(MODEL, f))
                for f in os.listdir(MODEL)) / 2**20,
            args.seconds, one_model_rss),
        "",
        "| round | swaps | requests/s | p50 ms | p99 ms | codes | peak RSS MB "
        "| RSS after release MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| %s | %d | %.0f | %.2f | %.2f | %s | %.0f | %.0f |" % (
            r["round"], r["swaps"], r["requests_per_s"], r["p50_ms"],
            r["p99_ms"], json.dumps(r["codes"]), r["peak_rss_mb"],
            r["rss_after_release_mb"]))
    lines += ["", "- failed calls across all rounds: **%d**" % failed, ""]
    section = "\n".join(lines)
    path = os.path.join(ROOT, "bench", "results", "serving.md")
    with open(path) as f:
        text = f.read()
    # This section in place (up to the next one: bench/http_vs_grpc.py's
    # section 6 follows it), or at the end the first time.
    own = re.compile(r"\n## 5\. Reload under load\n.*?(?=\n## |\Z)", re.S)
    if own.search(text):
        text = own.sub(lambda m: "\n" + section.rstrip("\n") + "\n", text,
                       count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)
    with open(os.path.join(ROOT, "bench", "results", "reload.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(section)


if __name__ == "__main__":
    main()
