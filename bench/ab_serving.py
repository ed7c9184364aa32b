#!/usr/bin/env python3
"""Two builds of ctxembed-server, same model, same load, interleaved rounds.

For "is this change slower?": runs bench/serving.py's closed-loop case
(64 callers, one 14-18-token sentence per request, default batching flags)
against build A and build B in turn, several rounds, and prints requests/s
and mean batch per round and the median of each.

  /usr/bin/python3 bench/ab_serving.py --a /tmp/old/build --b build
"""
import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serving  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="build directory A")
    ap.add_argument("--b", required=True, help="build directory B")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--duration_s", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--out", help="also write a markdown table here")
    ap.add_argument("--title", default="build A against build B")
    args = ap.parse_args()
    texts = serving.glosses()
    rates = {"a": [], "b": []}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        serving.make_model(model_dir, texts)
        near16 = os.path.join(tmp, "near16.txt")
        with open(near16, "w") as f:
            f.write("\n".join(t for t in texts if 14 <= len(t.split()) <= 18) + "\n")
        for r in range(args.rounds):
            for name in ("a", "b") if r % 2 == 0 else ("b", "a"):
                build = getattr(args, name)
                srv = serving.Server(build, model_dir)
                before = srv.metrics()
                # The load generator of build B drives both, so only the
                # server differs.
                res = serving.loadgen(args.b, srv, near16, name, mode="closed",
                                      concurrency=args.concurrency,
                                      duration_s=args.duration_s)
                batch = serving.mean_batch(before, srv.metrics())
                srv.stop()
                rates[name].append(res["requests_per_s"])
                print("round %d %s: %.0f requests/s, mean batch %.1f, p99 %.2f ms"
                      % (r, name, res["requests_per_s"], batch,
                         res["p99_ms"]), flush=True)
    ma, mb = statistics.median(rates["a"]), statistics.median(rates["b"])
    print("median requests/s: A %.0f, B %.0f (B/A %.3f)" % (ma, mb, mb / ma))
    if args.out:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                    if l.startswith("model name")), "unknown CPU")
        with open(args.out, "w") as f:
            f.write("# Serving A/B: %s\n\n" % args.title)
            f.write("`bench/ab_serving.py --a %s --b %s --rounds %d "
                    "--duration_s %d` on %s, %d cores: closed loop, %d "
                    "callers, one 14-18-token sentence per request, default "
                    "batching flags; rounds alternate which build goes "
                    "first.\n\n" % (args.a, args.b, args.rounds,
                                     args.duration_s, cpu, os.cpu_count(),
                                     args.concurrency))
            f.write("| round | A requests/s | B requests/s |\n|---|---|---|\n")
            for r in range(args.rounds):
                f.write("| %d | %.0f | %.0f |\n"
                        % (r, rates["a"][r], rates["b"][r]))
            f.write("\nMedian: A %.0f, B %.0f requests/s (B/A **%.3f**).\n"
                    % (ma, mb, mb / ma))


if __name__ == "__main__":
    main()
