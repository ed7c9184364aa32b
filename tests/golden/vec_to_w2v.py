"""Rewrites a .vec text file in the word2vec C binary format.

Format: "count dim\\n", then per word: the word's UTF-8 bytes, one space,
dim little-endian float32 values, and a newline (as word2vec.c writes it).
Usage: vec_to_w2v.py IN.vec OUT.bin
"""
import struct
import sys


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        count, dim = map(int, f.readline().split())
        rows = [line.rstrip("\n").rstrip(" ").split(" ") for line in f]
    assert len(rows) == count
    with open(sys.argv[2], "wb") as out:
        out.write(b"%d %d\n" % (count, dim))
        for row in rows:
            assert len(row) == dim + 1, row[0]
            out.write(row[0].encode("utf-8") + b" ")
            out.write(struct.pack("<%df" % dim, *map(float, row[1:])))
            out.write(b"\n")


if __name__ == "__main__":
    main()
