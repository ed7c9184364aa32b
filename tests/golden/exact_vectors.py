"""Prints fastText's word and sentence vectors exactly (float32 as hex).

Uses fastText's own Python binding (Debian python3-fasttext), which runs the
same C++ code as the CLI. Output lines: "W<TAB>word<TAB>hex..." and
"S<TAB>line number<TAB>hex..."; each value is float.hex() of the float32.
Usage: exact_vectors.py MODEL.bin WORDS.txt SENTENCES.txt
"""
import sys

import fasttext
import numpy as np


def hexes(vec):
    return " ".join(float(np.float32(x)).hex() for x in vec)


def main():
    model = fasttext.load_model(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        words = f.read().split()
    for w in words:
        print("W\t%s\t%s" % (w, hexes(model.get_word_vector(w))))
    with open(sys.argv[3], encoding="utf-8") as f:
        for i, line in enumerate(f.read().split("\n")[:-1]):
            print("S\t%d\t%s" % (i, hexes(model.get_sentence_vector(line))))


if __name__ == "__main__":
    main()
