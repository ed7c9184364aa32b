"""Transformer (BERT-family) models served from sentence-transformers
directories as saved: random-weight models in the exact layout, vectors
against tools/bert_reference.py (PyTorch, written from Hugging Face's
BertModel semantics) within 1e-5, through every RPC; the tokenizer against
@huggingface/transformers (tests/node) token id for token id."""
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import harness
from harness import embedder_pb2, grpc

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "tools"))
import bert_reference  # noqa: E402
import torch  # noqa: E402

MINILM = os.path.join(harness.SHARED, "data", "minilm-l6-tokenizer")
NODE_DIR = os.path.join(harness.SOURCE_DIR, "tests", "node")
TOL = 1e-5

# A small vocabulary for models that need no ../shared: special tokens,
# characters, continuations and a few words.
SMALL_VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
               + list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0123456789")
               + [chr(c) for c in range(ord("a"), ord("z") + 1)]
               + ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
               + ["the", "dog", "bites", "man", "cat", "sat", "on", "mat",
                  "hello", "world", "play", "##ing", "##ed", "un", "##believ",
                  "##able", "cafe", "naive", "你", "好", "σ", "ς",
                  "question", "answer", "what", "is"])

SENTENCES = ["Hello, world!", "the dog bites the man", "man bites dog",
             "Unbelievable: the cat sat on the mat, playing.",
             "Café naïve ΟΔΟΣ 你好 😀", "", "a",
             "what is the question? what is the answer?" * 3]


def ids_of(vocab_ids, tokens):
    return [vocab_ids[t] for t in tokens]


def max_diff(a, b):
    return float((torch.tensor(a, dtype=torch.float32) - b).abs().max())


class SmallModelsTest(unittest.TestCase):
    """Four small random models: pooling modes, dtypes, the bert. prefix,
    with and without modules.json."""

    VARIANTS = {
        # name: (pooling, normalize, dtype, prefix, modules, seed)
        "st-mean": ("mean", True, "f32", "", True, 1),
        "st-cls": ("cls", False, "f32", "bert.", True, 2),
        "st-max-f16": ("max", False, "f16", "", True, 3),
        "st-sqrt-bf16": ("mean_sqrt_len", True, "bf16", "", True, 4),
        "hf-plain": ("mean", False, "f32", "", False, 5),
    }

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ctxembed_bert_")
        cls.models = {}
        dirs = []
        for name, (pooling, normalize, dtype, prefix, modules, seed) in \
                cls.VARIANTS.items():
            model = bert_reference.BertReference(
                len(SMALL_VOCAB), hidden=32, layers=2, heads=4,
                intermediate=64, max_positions=64, seed=seed)
            model.round_to(dtype)
            d = os.path.join(cls.tmp, name)
            bert_reference.write_model_dir(
                d, model, vocab=SMALL_VOCAB, pooling=pooling,
                normalize=normalize, dtype=dtype, prefix=prefix,
                max_seq_length=24, modules=modules)
            if not modules:
                # A plain save_pretrained directory with a slow tokenizer:
                # settings from tokenizer_config.json alone.
                os.remove(os.path.join(d, "tokenizer.json"))
            cls.models[name] = (model, pooling if modules else "mean",
                                normalize and modules)
            dirs.append(d)
        cls.vocab_ids = {t: i for i, t in enumerate(SMALL_VOCAB)}
        cls.server = harness.Server(dirs)

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_vectors_match_the_pytorch_reference(self):
        for name, (model, pooling, normalize) in self.models.items():
            with self.subTest(model=name):
                request = embedder_pb2.EmbedRequest(
                    inputs=SENTENCES, model=name, truncate=True)
                tokens = self.server.stub.EmbedTokens(request, timeout=30)
                id_lists = [ids_of(self.vocab_ids, r.tokens)
                            for r in tokens.results]
                states, pooled = bert_reference.encode(
                    model, id_lists, pooling, normalize)
                for r, ref in zip(tokens.results, states):
                    got = [list(v.values) for v in r.vectors]
                    self.assertLess(max_diff(got, ref), TOL)
                embedded = self.server.stub.Embed(request, timeout=30)
                got = [list(e.values) for e in embedded.embeddings]
                self.assertLess(max_diff(got, pooled), TOL)
                # Alone or in a batch of other lengths: the same vector.
                for i, sentence in enumerate(SENTENCES[:4]):
                    alone = self.server.stub.Embed(embedder_pb2.EmbedRequest(
                        inputs=[sentence], model=name, truncate=True),
                        timeout=30)
                    self.assertLess(max_diff([list(alone.embeddings[0].values)],
                                             pooled[i:i + 1]), TOL)

    def served_and_reference(self, server, variant):
        """SENTENCES' vectors from `server`'s only model, and the PyTorch
        reference of `variant` on the word pieces the server used."""
        model, pooling, normalize = self.models[variant]
        request = embedder_pb2.EmbedRequest(inputs=SENTENCES, truncate=True)
        tokens = server.stub.EmbedTokens(request, timeout=30)
        id_lists = [ids_of(self.vocab_ids, r.tokens) for r in tokens.results]
        _, pooled = bert_reference.encode(model, id_lists, pooling, normalize)
        got = server.stub.Embed(request, timeout=30)
        return torch.tensor([list(e.values) for e in got.embeddings]), pooled

    def test_every_kernel_level_matches_the_reference(self):
        d = os.path.join(self.tmp, "st-sqrt-bf16")
        for level in harness.cpu_levels():
            with self.subTest(cpu_isa=level):
                server = harness.Server([d], "--cpu_isa=" + level)
                try:
                    got, pooled = self.served_and_reference(server,
                                                            "st-sqrt-bf16")
                    self.assertLess(max_diff(got.tolist(), pooled), TOL)
                finally:
                    server.close()

    def test_ctxembed_json_serves_reduced_precision_close_to_fp32(self):
        """{"precision": "bf16"} or "int8" in ctxembed.json beside the
        model's files: logged, vectors within cosine 0.999 of the fp32
        reference (not equal to it: the reduced path did run), on every
        kernel level (the bf16 and int8 kernels where the CPU has them, the
        rounded weights on the fp32 kernels elsewhere)."""
        for precision in ("bf16", "int8"):
            d = os.path.join(self.tmp, "st-mean-" + precision)
            shutil.copytree(os.path.join(self.tmp, "st-mean"), d)
            with open(os.path.join(d, "ctxembed.json"), "w") as f:
                json.dump({"precision": precision}, f)
            for level in harness.cpu_levels():
                with self.subTest(precision=precision, cpu_isa=level):
                    server = harness.Server([d], "--cpu_isa=" + level)
                    try:
                        self.assertIn(precision + " weights", "".join(server.log))
                        got, pooled = self.served_and_reference(server, "st-mean")
                        cosine = torch.nn.functional.cosine_similarity(got, pooled)
                        self.assertGreater(float(cosine.min()), 0.999)
                        self.assertGreater(max_diff(got.tolist(), pooled), 1e-6)
                    finally:
                        server.close()

    def test_word_pieces_and_special_tokens(self):
        reply = self.server.stub.Tokenize(embedder_pb2.TokenizeRequest(
            inputs=["Unbelievable, playing!", "你好 xyzzy", "zq" * 60],
            model="st-mean"),
            timeout=10)
        self.assertEqual(list(reply.results[0].tokens),
                         ["[CLS]", "un", "##believ", "##able", ",", "play",
                          "##ing", "!", "[SEP]"])
        self.assertEqual(list(reply.results[1].tokens),
                         ["[CLS]", "你", "好", "x", "##y", "##z", "##z", "##y",
                          "[SEP]"])
        # A word over 100 characters is one unknown token.
        self.assertEqual(list(reply.results[2].tokens),
                         ["[CLS]", "[UNK]", "[SEP]"])

    def test_truncation_keeps_cls_and_sep(self):
        long = "dog " * 40  # 40 pieces; max_seq_length is 24
        with self.assertRaises(grpc.RpcError) as cm:
            self.server.stub.Embed(embedder_pb2.EmbedRequest(
                inputs=[long], model="st-mean"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        reply = self.server.stub.EmbedTokens(embedder_pb2.EmbedRequest(
            inputs=[long + "cat"], model="st-mean", truncate=True), timeout=10)
        tokens = list(reply.results[0].tokens)
        self.assertEqual(tokens, ["[CLS]"] + ["dog"] * 22 + ["[SEP]"])
        left = self.server.stub.EmbedTokens(embedder_pb2.EmbedRequest(
            inputs=[long + "cat"], model="st-mean", truncate=True,
            truncation_direction=embedder_pb2.TRUNCATION_DIRECTION_LEFT),
            timeout=10)
        self.assertEqual(list(left.results[0].tokens),
                         ["[CLS]"] + ["dog"] * 21 + ["cat", "[SEP]"])
        count = self.server.stub.Tokenize(embedder_pb2.TokenizeRequest(
            inputs=[long], model="st-mean", truncate=True), timeout=10)
        self.assertEqual(count.results[0].token_count, 42)

    def test_every_rpc_and_the_http_route(self):
        models = self.server.stub.ListModels(embedder_pb2.ListModelsRequest(),
                                             timeout=10)
        info = {m.name: m for m in models.models}
        self.assertEqual(info["st-cls"].architecture, "bert-L2-H32")
        self.assertEqual(info["st-cls"].dimension, 32)
        self.assertEqual(info["st-cls"].pooling, "cls")
        self.assertEqual(info["st-cls"].max_tokens, 24)
        stream = list(self.server.stub.EmbedStream(iter([
            embedder_pb2.EmbedRequest(inputs=["the dog"], model="hf-plain"),
            embedder_pb2.EmbedRequest(inputs=["man bites dog", "a"],
                                      model="st-cls")]), timeout=10))
        self.assertEqual([len(r.embeddings) for r in stream], [1, 2])
        score = self.server.stub.Score(embedder_pb2.ScoreRequest(
            pairs=[embedder_pb2.Pair(a="the dog", b="the dog")], model="st-mean"),
            timeout=10)
        self.assertAlmostEqual(score.scores[0], 1.0, places=5)
        body = json.dumps({"input": ["the dog bites the man"],
                           "model": "st-mean"}).encode()
        req = urllib.request.Request(
            "http://127.0.0.1:%d/v1/embeddings" % self.server.http_port, body,
            {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.loads(r.read())
        grpc_vec = self.server.stub.Embed(embedder_pb2.EmbedRequest(
            inputs=["the dog bites the man"], model="st-mean"), timeout=10)
        self.assertLess(max_diff([answer["data"][0]["embedding"]],
                                 torch.tensor([list(grpc_vec.embeddings[0].values)])),
                        1e-6)
        # Word order matters to a transformer.
        a, b = (self.server.stub.Embed(embedder_pb2.EmbedRequest(
            inputs=[s], model="st-mean"), timeout=10).embeddings[0].values
            for s in ("dog bites man", "man bites dog"))
        self.assertGreater(max_diff([list(a)], torch.tensor([list(b)])), 1e-3)


def tiny_model_dir(test, **layout):
    """A 1-layer random model on SMALL_VOCAB in a temporary directory removed
    after `test`; `layout` goes to write_model_dir."""
    tmp = tempfile.mkdtemp(prefix="ctxembed_tinybert_")
    test.addCleanup(shutil.rmtree, tmp, True)
    d = os.path.join(tmp, "m")
    model = bert_reference.BertReference(len(SMALL_VOCAB), hidden=16, layers=1,
                                         heads=2, intermediate=32,
                                         max_positions=32)
    bert_reference.write_model_dir(d, model, vocab=SMALL_VOCAB, **layout)
    return d


class HugeInputTest(unittest.TestCase):

    def test_a_huge_word_costs_little_memory(self):
        d = tiny_model_dir(self, max_seq_length=32)
        server = harness.Server([d], "--max_message_bytes=%d" % (40 << 20))
        self.addCleanup(server.close)
        word = "x" * (16 << 20)
        reply = server.stub.Tokenize(embedder_pb2.TokenizeRequest(
            inputs=["the " + word + " dog"], truncate=True), timeout=60)
        self.assertEqual(list(reply.results[0].tokens),
                         ["[CLS]", "the", "[UNK]", "dog", "[SEP]"])
        with open("/proc/%d/status" % server.proc.pid) as f:
            peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        # The request itself is 16 MB, held a few times over by gRPC and
        # ICU's UTF-16 copy (178 MB measured); the word's characters are
        # not kept.
        self.assertLess(peak / 1024, 400, "peak RSS %d MB" % (peak // 1024))


class BadDirectoriesTest(unittest.TestCase):

    def make(self, edit):
        d = tiny_model_dir(self)
        edit(d)
        return d

    def refused(self, edit, message):
        d = self.make(edit)
        code, err = harness.run_server_expecting_failure([d])
        self.assertEqual(code, 1)
        self.assertIn(message, err)

    def edit_json(self, path, **changes):
        def edit(d):
            with open(os.path.join(d, path)) as f:
                j = json.load(f)
            j.update(changes)
            with open(os.path.join(d, path), "w") as f:
                json.dump(j, f)
        return edit

    def test_unsupported_settings_are_refused_with_the_key(self):
        self.refused(self.edit_json("config.json", model_type="roberta"),
                     '"roberta" is not supported; supported: bert')
        self.refused(self.edit_json("config.json", hidden_act="relu"),
                     'key "hidden_act"')
        self.refused(self.edit_json("config.json",
                                    position_embedding_type="relative_key"),
                     'key "position_embedding_type"')
        self.refused(self.edit_json("1_Pooling/config.json",
                                    pooling_mode_max_tokens=True),
                     "exactly one pooling mode")
        self.refused(self.edit_json("config.json", num_hidden_layers=2),
                     "encoder.layer.1")
        self.refused(lambda d: os.remove(os.path.join(d, "model.safetensors")),
                     "safe_serialization")

    def test_a_dense_module_is_refused(self):
        def edit(d):
            with open(os.path.join(d, "modules.json")) as f:
                modules = json.load(f)
            modules.append({"idx": 3, "name": "3", "path": "3_Dense",
                            "type": "sentence_transformers.models.Dense"})
            with open(os.path.join(d, "modules.json"), "w") as f:
                json.dump(modules, f)
        self.refused(edit, 'module type "sentence_transformers.models.Dense"')


def edge_case_sentences(n, seed):
    """`n` sentences built from the pieces tokenizers get wrong: accents and
    combining marks, capital sigma, Turkish dotted I, CJK, Hangul, emoji
    with joiners and variation selectors, control, format and private-use
    characters, many kinds of whitespace and punctuation, symbols,
    fullwidth letters, U+FFFD, and words of 100 and 101 characters."""
    rng = random.Random(seed)
    words = ["Hello", "WORLD", "naïve", "Café", "ΟΔΟΣ", "Σίσυφος", "İstanbul",
             "ıi", "straße", "STRASSE", "ẞ", "你好", "東京タワー", "한국어",
             "😀", "👩\u200d👩\u200d👧", "❤\ufe0f", "unaffable", "don't", "U.S.A.", "3.14",
             "e-mail", "C++", "¿Qué?", "«quoted»", "“smart”", "…", "—",
             "、。", "€100", "©™", "ＡＢＣ", "x\u0301\u0323", "\u00ad",
             "\u200b", "\u200d", "\ufeff", "\ue000", "\ufffd", "\u0000",
             "\u0007", "\u0085", "\u00a0", "\u2003", "\u3000", "\u2028",
             "\u0009", "\r\n", "a" * 100, "b" * 101, "Ǆ", "ǅ", "ﬁ", "Å", "Å",
             "ÅNGSTRÖM", "Ω", "Ω", "ΣΑΣ.", "ΑΣ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𠀀𠀁"]
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF),
              (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F), (0x2000, 0x206F),
              (0x3000, 0x30FF), (0x4E00, 0x4E80), (0xAC00, 0xAC40),
              (0xFF00, 0xFF60), (0x1F300, 0x1F64F), (0x0, 0x1F)]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.5:
                parts.append(rng.choice(words))
            else:
                lo, hi = rng.choice(ranges)
                parts.append("".join(chr(rng.randint(lo, hi))
                                     for _ in range(rng.randint(1, 8))))
        out.append(rng.choice(["", " ", "  "]).join(parts))
    return out


def corpus_sentences():
    out = []
    for name in ("extra_sentences.txt", "queries_sentences.txt"):
        with open(os.path.join(harness.GOLDEN, name), encoding="utf-8") as f:
            out += [line.rstrip("\n") for line in f if line.strip()]
    return out


@unittest.skipUnless(
    os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@huggingface",
                               "transformers")),
    "tests/node/node_modules/@huggingface/transformers missing: run "
    "scripts/setup.sh")
class TokenizerParityTest(unittest.TestCase):
    """Token ids from the server's Tokenize against @huggingface/transformers
    on the same tokenizer files."""

    # @huggingface/transformers pads CJK ideographs by UTF-16 code unit, so
    # it misses those outside the BMP (Extensions B-F, U+20000-U+2FA1F),
    # which transformers' Python BertTokenizer and the Rust tokenizers (what
    # sentence-transformers runs) pad. ctxembed does what they do: the JS
    # side gets those characters padded already, its own step then being a
    # no-op, so every sentence is still compared id for id.
    ASTRAL_CJK = re.compile("([\U00020000-\U0002A6DF\U0002A700-\U0002CEAF"
                            "\U0002F800-\U0002FA1F])")

    def check(self, model_dir, vocab, sentences):
        with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
            vocab_ids = {}
            for i, t in enumerate(f.read().split("\n")):
                vocab_ids.setdefault(t, i)
        tmp = tempfile.mkdtemp(prefix="ctxembed_parity_")
        self.addCleanup(shutil.rmtree, tmp, True)
        sentences_file = os.path.join(tmp, "sentences.json")
        with open(sentences_file, "w", encoding="utf-8") as f:
            json.dump([self.ASTRAL_CJK.sub(r" \1 ", t) for t in sentences], f)
        js = subprocess.run(["node", os.path.join(NODE_DIR, "hf_tokenize.mjs"),
                             model_dir, sentences_file], capture_output=True,
                            text=True, timeout=300, cwd=NODE_DIR)
        self.assertEqual(js.returncode, 0, js.stderr[-2000:])
        expected = json.loads(js.stdout)
        server = harness.Server([model_dir])
        self.addCleanup(server.close)
        got = []
        for i in range(0, len(sentences), 200):
            reply = server.stub.Tokenize(embedder_pb2.TokenizeRequest(
                inputs=sentences[i:i + 200]), timeout=60)
            got += [ids_of(vocab_ids, r.tokens) for r in reply.results]
        mismatches = [(s, e, g) for s, e, g in zip(sentences, expected, got)
                      if e != g]
        self.assertEqual(len(got), len(sentences))
        self.assertEqual(mismatches[:5], [],
                         "%d of %d sentences differ" % (len(mismatches),
                                                        len(sentences)))
        return len(sentences)

    def model_dir(self, tokenizer_dir=None):
        tmp = tempfile.mkdtemp(prefix="ctxembed_parity_model_")
        self.addCleanup(shutil.rmtree, tmp, True)
        d = os.path.join(tmp, "tok")
        vocab_size = len(SMALL_VOCAB)
        if tokenizer_dir:
            with open(os.path.join(tokenizer_dir, "vocab.txt"), encoding="utf-8") as f:
                vocab_size = len(f.read().rstrip("\n").split("\n"))
        model = bert_reference.BertReference(vocab_size, hidden=8, layers=1,
                                             heads=2, intermediate=8,
                                             max_positions=512)
        bert_reference.write_model_dir(d, model, tokenizer_dir=tokenizer_dir,
                                       vocab=SMALL_VOCAB, max_seq_length=512)
        return d

    def test_small_vocabulary(self):
        sentences = corpus_sentences() + edge_case_sentences(2000, seed=1)
        self.check(self.model_dir(), SMALL_VOCAB, sentences)

    @unittest.skipUnless(os.path.isdir(MINILM),
                         "%s is missing (../shared is not beside this checkout)"
                         % MINILM)
    def test_minilm_vocabulary(self):
        sentences = corpus_sentences() + edge_case_sentences(3000, seed=2)
        stsb = os.path.join(harness.SHARED, "data", "eval", "stsb",
                            "stsb-en-dev.csv")
        if os.path.exists(stsb):
            with open(stsb, encoding="utf-8") as f:
                for row in csv.reader(f):
                    sentences += row[:2]
        self.check(self.model_dir(MINILM), None, sentences)


@unittest.skipUnless(os.path.isdir(MINILM),
                     "%s is missing (../shared is not beside this checkout)"
                     % MINILM)
class MiniLmShapeTest(unittest.TestCase):
    """all-MiniLM-L6-v2's real configuration and tokenizer with random
    weights of its shapes."""

    def test_minilm_shape_matches_the_reference(self):
        with open(os.path.join(MINILM, "config.json")) as f:
            c = json.load(f)
        model = bert_reference.BertReference(
            c["vocab_size"], hidden=c["hidden_size"],
            layers=c["num_hidden_layers"], heads=c["num_attention_heads"],
            intermediate=c["intermediate_size"],
            max_positions=c["max_position_embeddings"], seed=7)
        tmp = tempfile.mkdtemp(prefix="ctxembed_minilm_")
        self.addCleanup(shutil.rmtree, tmp, True)
        d = os.path.join(tmp, "all-MiniLM-L6-v2")
        bert_reference.write_model_dir(d, model, tokenizer_dir=MINILM,
                                       pooling="mean", normalize=True)
        for name in ("modules.json", "sentence_bert_config.json"):
            shutil.copy(os.path.join(MINILM, name), d)
        shutil.copy(os.path.join(MINILM, "1_Pooling", "config.json"),
                    os.path.join(d, "1_Pooling", "config.json"))
        server = harness.Server([d])
        self.addCleanup(server.close)
        with open(os.path.join(MINILM, "vocab.txt"), encoding="utf-8") as f:
            vocab_ids = {t: i for i, t in
                         enumerate(f.read().split("\n")) if t}
        request = embedder_pb2.EmbedRequest(inputs=SENTENCES, truncate=True)
        tokens = server.stub.EmbedTokens(request, timeout=60)
        id_lists = [ids_of(vocab_ids, r.tokens) for r in tokens.results]
        self.assertEqual(id_lists[0], [101, 7592, 1010, 2088, 999, 102])
        states, pooled = bert_reference.encode(model, id_lists, "mean", True)
        for r, ref in zip(tokens.results, states):
            self.assertLess(max_diff([list(v.values) for v in r.vectors], ref), TOL)
        got = server.stub.Embed(request, timeout=60)
        self.assertLess(max_diff([list(e.values) for e in got.embeddings], pooled),
                        TOL)


if __name__ == "__main__":
    unittest.main()
