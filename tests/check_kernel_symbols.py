#!/usr/bin/env python3
"""Checks that the per-CPU-level kernel objects (model/kernels_isa.cc, one
object per level) define no symbol another object could share.

A template or inline function instantiated in two objects compiled for
different levels is kept once by the linker, compiled for whichever level
came first: a v4 (AVX-512) copy could then run on a v3 CPU. So each
object may define exactly one global symbol, its level's table
(ctxembed::kernels_<level>::kTable), and nothing weak or unique.

Usage: check_kernel_symbols.py OBJECT... (exits 1 naming each offender)
"""
import re
import subprocess
import sys


def main(objects):
    bad = []
    for obj in objects:
        out = subprocess.run(["nm", "-C", "--defined-only", obj], check=True,
                             capture_output=True, text=True).stdout
        tables = 0
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) < 3:
                continue
            kind, name = parts[1], parts[2]
            if kind.islower() and kind not in "uvw":
                continue  # local to the object
            if name.startswith("__odr_asan.") and "kernels_" in name:
                continue  # AddressSanitizer's marker for our own table
            if re.fullmatch(r"ctxembed::kernels_\w+::k(Table|Gemm)", name) and kind in "DR":
                tables += 1
                continue
            bad.append("%s: %s %s" % (obj, kind, name))
        if tables != 1:
            bad.append("%s: defines %d kernel tables, not 1" % (obj, tables))
    for b in bad:
        print("shared symbol in a kernel object:", b)
    if not objects:
        print("no objects given")
        return 1
    print("%d kernel objects checked" % len(objects))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
