#!/usr/bin/python3
"""Writes the small hand-made seed inputs in tests/fuzz/seeds/ (the larger
seeds are the test fixtures under tests/golden, named in run.sh)."""
import os
import struct

d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
os.makedirs(d, exist_ok=True)


def ld(field, b):
    """A length-delimited protobuf field (short values only)."""
    return bytes([field << 3 | 2, len(b)]) + b


with open(os.path.join(d, "vec_text.vec"), "w") as f:
    f.write("3 2\na 0.1 0.2\nb -1 2e-3\n\u2003 0 0\n")
with open(os.path.join(d, "word2vec.bin"), "wb") as f:
    f.write(b"2 2\na " + struct.pack("<2f", 0.5, -1) + b"\nbb " +
            struct.pack("<2f", 1e-3, 3) + b"\n")
with open(os.path.join(d, "text.txt"), "wb") as f:
    # Punctuation, case, CJK, a Unicode space, NUL, and broken UTF-8.
    f.write("The dog, bit the MAN!\n東京 café\t\u2003x\x00y ".encode() +
            b"\xff\xc3(\xf0\x9f\x98")
# EmbedRequest{inputs: ["the dog", "cat"], model: "sg_d8"};
# ScoreRequest{pairs: [{a: "a b", b: "c"}]}.
with open(os.path.join(d, "embed_request.pb"), "wb") as f:
    f.write(ld(1, b"the dog") + ld(1, b"cat") + ld(2, b"sg_d8"))
with open(os.path.join(d, "score_request.pb"), "wb") as f:
    f.write(ld(1, ld(1, b"a b") + ld(2, b"c")))
# HTTP bodies: an OpenAI /v1/embeddings request with every field, and a TEI
# /similarity request (also read as the other routes' bodies).
with open(os.path.join(d, "openai_body.json"), "w") as f:
    f.write('{"input": ["the dog bit the man", "a b"], "model": "m", '
            '"encoding_format": "base64", "dimensions": 8, "user": "u", '
            '"normalize": false, "truncate": true}')
with open(os.path.join(d, "tei_body.json"), "w") as f:
    f.write('{"inputs": {"source_sentence": "the dog", "sentences": '
            '["a", "b\\u00e9"]}, "truncate": true, '
            '"truncation_direction": "left", "normalize": true}')
