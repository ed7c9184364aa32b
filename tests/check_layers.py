#!/usr/bin/env python3
"""Checks that every #include of ctxembed's own headers follows the layers:

    server -> inference -> scheduling
                        -> model
    tools  -> inference, server/grpc_status.h (its --local mode and client)

model/ and scheduling/ include only themselves (scheduling/ knows no model);
inference/ may add the proto messages, never gRPC's service stubs; nothing
but tests includes test helpers of another layer. Exits 1 naming each
include that crosses a layer the wrong way.
"""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# Layer -> the project prefixes its files may include ("" = system headers
# are always allowed; they do not start with a layer name).
ALLOWED = {
    "model": {"model"},
    "scheduling": {"scheduling"},
    "inference": {"inference", "model", "scheduling", "ctxembed/v1/embedder.pb.h"},
    "server": {"server", "inference", "model", "scheduling", "ctxembed/v1"},
    "tools": {"tools", "inference", "model", "scheduling", "ctxembed/v1",
              "server/grpc_status.h"},
    "bench": {"bench", "model", "scheduling", "inference", "ctxembed/v1"},
}
LAYERS = ("model", "scheduling", "inference", "server", "tools", "bench",
          "tests", "ctxembed/v1")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def allowed(layer, header, is_test):
    if not header.startswith(LAYERS):
        return True  # abseil, Eigen, gtest, ...
    if is_test and header.endswith(("test_data.h", "golden_compare.h")):
        return True
    return any(header == p or header.startswith(p.rstrip("/") + "/")
               or header.startswith(p + ".")
               for p in ALLOWED[layer])


def main():
    problems = []
    for layer in ALLOWED:
        for dirpath, _, files in os.walk(os.path.join(ROOT, layer)):
            for name in files:
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.join(dirpath, name)
                is_test = name.endswith("_test.cc")
                with open(path, encoding="utf-8") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m and not allowed(layer, m.group(1), is_test):
                            problems.append("%s:%d: %s/ must not include %s"
                                            % (os.path.relpath(path, ROOT), n,
                                               layer, m.group(1)))
    for p in problems:
        print(p)
    print("layers: %d violation(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
