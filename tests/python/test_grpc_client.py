"""An independent client (Python grpcio, stubs from the .proto) against the
real server binary: vectors equal fastText's, errors are clear, health and
reflection work."""
import os
import random
import subprocess
import tempfile
import unittest

import harness
from harness import (embedder_pb2, grpc, health_pb2, reflection_pb2,
                     reflection_pb2_grpc)


def train_fasttext(workdir, seed):
    """Trains a fastText model no test has seen before, with random
    parameters drawn from `seed`; returns (model path, description)."""
    rng = random.Random(seed)
    corpus = os.path.join(workdir, "corpus.txt")
    lines = []
    with open("/usr/share/wordnet/data.verb", encoding="latin-1") as f:
        for line in f:
            if "|" in line and not line.startswith("  "):
                lines.append(line.split("|", 1)[1].strip())
    rng.shuffle(lines)
    extra = harness.read(os.path.join(harness.GOLDEN, "extra_sentences.txt"))
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(lines[:800]) + "\n" + extra * 5)
    kind = rng.choice(["skipgram", "cbow"])
    dim = rng.randint(3, 24)
    minn = rng.randint(1, 4)
    maxn = rng.choice([0, minn + rng.randint(0, 3)])
    bucket = rng.choice([50, 333, 2000])
    desc = "%s dim=%d minn=%d maxn=%d bucket=%d seed=%d" % (
        kind, dim, minn, maxn, bucket, seed)
    out = os.path.join(workdir, "model")
    subprocess.run(["fasttext", kind, "-input", corpus, "-output", out,
                    "-dim", str(dim), "-minn", str(minn), "-maxn", str(maxn),
                    "-bucket", str(bucket), "-minCount", "2", "-epoch", "1",
                    "-thread", "1", "-verbose", "0"], check=True)
    return out + ".bin", desc


def numpy_sif(model, sentences, a=1e-3):
    """SIF with no component removed, from fastText's own Python binding:
    a / (a + count / total) weights on fastText's word vectors, averaged."""
    import fasttext
    import numpy as np
    ft = fasttext.load_model(model)
    words, freqs = ft.get_words(include_freq=True)
    counts = dict(zip(words, freqs))
    total = float(sum(freqs))
    out = []
    for s in sentences:
        tokens = s.split()
        v = np.zeros(ft.get_dimension())
        for t in tokens:
            v += a / (a + counts.get(t, 0) / total) * ft.get_word_vector(t)
        out.append(v / max(1, len(tokens)))
    return out


def cli_vectors(command, model, text):
    p = subprocess.run(["fasttext", command, model], input=text,
                       capture_output=True, text=True, check=True)
    return harness.parse_printed_vectors(p.stdout)


class FreshFastTextModelTest(unittest.TestCase):
    """Models trained now, with random parameters, compared with the CLI."""

    def check_model(self, seed):
        with tempfile.TemporaryDirectory() as work:
            model, desc = train_fasttext(work, seed)
            with open(os.path.join(work, "config.json"), "w") as f:
                f.write('{"ctxembed_format": 1, "name": "fresh", '
                        '"max_tokens": 256, "embedding": {"kind": "fasttext",'
                        ' "file": "model.bin"}, "encoder": [], '
                        '"pooling": "fasttext"}')
            words = harness.read(os.path.join(
                harness.GOLDEN, "queries_words.txt")).split()
            sentences = harness.read(os.path.join(
                harness.GOLDEN, "queries_sentences.txt")).split("\n")[:-1]
            want_words = cli_vectors("print-word-vectors", model,
                                     "\n".join(words) + "\n")
            want_sentences = cli_vectors("print-sentence-vectors", model,
                                         "\n".join(sentences) + "\n")
            server = harness.Server([work], metrics=False)
            try:
                got = server.stub.EmbedTokens(
                    embedder_pb2.EmbedRequest(inputs=[" ".join(words)]))
                result = got.results[0]
                self.assertEqual(list(result.tokens), words)
                for i, w in enumerate(words):
                    self.assertEqual(want_words[i][0], w)
                    self.assertEqual(harness.printed(result.vectors[i].values),
                                     want_words[i][1:], "%s: word %r" % (desc, w))
                emb = server.stub.Embed(embedder_pb2.EmbedRequest(
                    inputs=sentences, request_id="fresh-%d" % seed))
                self.assertEqual(emb.request_id, "fresh-%d" % seed)
                for i, s in enumerate(sentences):
                    self.assertEqual(harness.printed(emb.embeddings[i].values),
                                     want_sentences[i],
                                     "%s: sentence %r" % (desc, s))
                sif = server.stub.Embed(embedder_pb2.EmbedRequest(
                    inputs=sentences, pooling=embedder_pb2.POOLING_SIF))
                for i, want in enumerate(numpy_sif(model, sentences)):
                    got = list(sif.embeddings[i].values)
                    for g, w in zip(got, want):
                        self.assertAlmostEqual(g, w, delta=1e-5 + 1e-4 * abs(w),
                                               msg="%s: sif %r" % (desc, sentences[i]))
                code, _ = server.stop()
                self.assertEqual(code, 0)
            finally:
                server.close()

    def test_three_random_models(self):
        base = random.SystemRandom().randrange(1 << 30)
        for k in range(3):
            with self.subTest(seed=base + k):
                self.check_model(base + k)


class ServedGoldenModelsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(
            [os.path.join(harness.GOLDEN, "models", m)
             for m in ("sg_d8", "cbow_d12", "sg_d8_vec")],
            "--max_inputs_per_request=16")
        cls.stub = cls.server.stub

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def expect_error(self, call, request, code, message):
        with self.assertRaises(grpc.RpcError) as cm:
            call(request)
        self.assertEqual(cm.exception.code(), code)
        self.assertIn(message, cm.exception.details())

    def test_health_serving(self):
        for service in ("", "ctxembed.v1.Embedder"):
            r = self.server.health.Check(
                health_pb2.HealthCheckRequest(service=service))
            self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)

    def test_reflection_lists_the_service(self):
        stub = reflection_pb2_grpc.ServerReflectionStub(self.server.channel)
        responses = stub.ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="ctxembed.v1.Embedder")]))
        listed, described = next(responses), next(responses)
        names = [s.name for s in listed.list_services_response.service]
        self.assertIn("ctxembed.v1.Embedder", names)
        self.assertTrue(described.file_descriptor_response.file_descriptor_proto)

    def test_golden_sentences_through_the_api(self):
        sentences = harness.read(os.path.join(
            harness.GOLDEN, "queries_sentences.txt")).split("\n")[:-1]
        for model in ("sg_d8", "cbow_d12"):
            want = harness.parse_printed_vectors(harness.read(os.path.join(
                harness.GOLDEN, "expected", model + ".sentences.txt")))
            r = self.stub.Embed(embedder_pb2.EmbedRequest(
                inputs=sentences, model=model))
            self.assertEqual(r.model, model)
            for i in range(len(sentences)):
                self.assertEqual(harness.printed(r.embeddings[i].values),
                                 want[i], "%s sentence %d" % (model, i))

    def test_list_models(self):
        r = self.stub.ListModels(embedder_pb2.ListModelsRequest())
        self.assertEqual([m.name for m in r.models],
                         ["sg_d8", "cbow_d12", "sg_d8_vec"])
        self.assertTrue(r.models[0].is_default)
        self.assertEqual(r.models[1].dimension, 12)
        self.assertEqual(r.models[0].pooling, "fasttext")

    def test_empty_input_is_the_zero_vector(self):
        r = self.stub.Embed(embedder_pb2.EmbedRequest(inputs=["", "  "]))
        self.assertEqual(list(r.embeddings[0].values), [0.0] * 8)
        self.assertEqual(list(r.embeddings[1].values), [0.0] * 8)
        self.assertEqual(r.usage.tokens, 0)

    def test_bad_requests(self):
        E = embedder_pb2.EmbedRequest
        INVALID = grpc.StatusCode.INVALID_ARGUMENT
        self.expect_error(self.stub.Embed, E(), INVALID, "request has no inputs")
        self.expect_error(self.stub.Embed, E(inputs=["x"] * 17), INVALID,
                          "request has 17 inputs; max_inputs_per_request is 16")
        self.expect_error(self.stub.Embed, E(inputs=["ok", "w " * 65]), INVALID,
                          'input 1 has 65 tokens; max_tokens of model "sg_d8" is 64')
        self.expect_error(self.stub.Embed, E(inputs=["x"], model="nope"),
                          grpc.StatusCode.NOT_FOUND,
                          'model "nope" is not loaded')
        self.expect_error(self.stub.EmbedTokens, E(inputs=["a", "b", "w " * 99]),
                          INVALID, "input 2 has 99 tokens")
        r = self.stub.Embed(E(inputs=["w " * 65], truncate=True))
        self.assertEqual(r.usage.tokens, 64)
        self.expect_error(self.stub.Embed,
                          E(inputs=["x"], model="sg_d8_vec",
                            pooling=embedder_pb2.POOLING_SIF), INVALID,
                          'pooling SIF needs word counts; model "sg_d8_vec" '
                          'has vec word vectors without counts')

    def test_invalid_utf8_names_the_input(self):
        raw = self.server.channel.unary_unary(
            "/ctxembed.v1.Embedder/Embed",
            request_serializer=lambda b: b,
            response_deserializer=embedder_pb2.EmbedResponse.FromString)
        body = b"\x0a\x02ok" + b"\x0a\x03ok\xff"  # inputs: "ok", b"ok\xff"
        with self.assertRaises(grpc.RpcError) as cm:
            raw(body)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(cm.exception.details(),
                         "input 1 is not valid UTF-8 (byte 2)")
        # The server goes on serving.
        self.stub.Embed(embedder_pb2.EmbedRequest(inputs=["fine"]))

    def test_stream(self):
        reqs = [embedder_pb2.EmbedRequest(inputs=["s %d" % i] * (i + 1),
                                          request_id=str(i)) for i in range(6)]
        out = list(self.stub.EmbedStream(iter(reqs)))
        self.assertEqual([r.request_id for r in out], [str(i) for i in range(6)])
        self.assertEqual([len(r.embeddings) for r in out], list(range(1, 7)))

    def test_score(self):
        r = self.stub.Score(embedder_pb2.ScoreRequest(pairs=[
            embedder_pb2.Pair(a="the dog bit the man", b="the man bit the dog"),
            embedder_pb2.Pair(a="the dog", b="a kind of plant")]))
        # A bag of vectors cannot tell word order apart: exactly the same.
        self.assertAlmostEqual(r.scores[0], 1.0, places=5)
        e = self.stub.Embed(embedder_pb2.EmbedRequest(
            inputs=["the dog", "a kind of plant"], normalize=True)).embeddings
        cosine = sum(x * y for x, y in zip(e[0].values, e[1].values))
        self.assertAlmostEqual(r.scores[1], cosine, places=6)


if __name__ == "__main__":
    unittest.main()
