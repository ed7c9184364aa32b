"""PyTorch encoders no test has seen before, built now with random sizes and
weights, exported with tools/export_torch.py, served by the real binary and
queried with grpcio: token and sentence vectors must equal PyTorch's within
1e-5 absolute (or 1e-4 relative), on a CPU kernel level (--cpu_isa) chosen
in turn among those this machine runs."""
import os
import random
import sys
import tempfile
import unittest

import numpy as np
import torch

import harness
from harness import embedder_pb2, grpc

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "tools"))
import export_torch  # noqa: E402
from torch_encoder import DualEncoder, TorchEncoder, tokenize  # noqa: E402


def assert_close(test, got, want, what):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    test.assertEqual(got.shape, want.shape, what)
    bad = np.abs(got - want) > np.maximum(1e-5, 1e-4 * np.abs(want))
    test.assertFalse(bad.any(), "%s: worst diff %g" % (
        what, float(np.abs(got - want).max()) if got.size else 0.0))


def random_texts(rng, vocab, count):
    texts = []
    for _ in range(count):
        n = rng.choice([0, 1, 2, 5, 9, 17, 33, 70])
        texts.append(" ".join(rng.choice(vocab + ["oov%d" % rng.randint(0, 5)])
                              for _ in range(n)))
    return texts


def random_tower(rng, emb_dim):
    """A random tower config: 1-3 modules of LSTM/GRU, uni or bi,
    sometimes residual, odd sizes."""
    modules, size = [], emb_dim
    for k in range(rng.randint(1, 3)):
        kind = rng.choice(["lstm", "gru"])
        bi = rng.random() < 0.6
        hidden = rng.randint(3, 29)
        residual = k > 0 and not bi and rng.random() < 0.5
        if residual:
            hidden = size
        modules.append({"kind": kind, "prefix": "enc.m%d" % k,
                        "input_size": size, "hidden_size": hidden,
                        "num_layers": rng.randint(1, 2), "bidirectional": bi,
                        "residual": residual})
        size = hidden * (2 if bi else 1)
    return {"embedding": {"kind": "table", "tensor": "emb.weight",
                          "vocab": "vocab.txt", "unk_token": "<unk>"},
            "encoder": modules,
            "pooling": rng.choice(["mean", "max", "last"])}


class HiddenTorchModelTest(unittest.TestCase):

    def check_single(self, seed):
        rng = random.Random(seed)
        torch.manual_seed(seed)
        vocab = ["<unk>"] + ["tok%d" % i for i in range(rng.randint(5, 50))]
        emb_dim = rng.randint(2, 31)
        tower = random_tower(rng, emb_dim)
        proj = rng.choice([None, rng.randint(2, 9)])
        if proj:
            tower["projection"] = {"prefix": "head"}
            tower["normalize"] = rng.random() < 0.5
        dtype = rng.choice(["f32", "f16", "bf16"])
        enc = TorchEncoder(tower, vocab=vocab, embedding_dim=emb_dim,
                           projection_dim=proj)
        with torch.no_grad():
            for p in enc.parameters():
                p.copy_(export_torch.round_to(dtype, p))
        config = dict(tower, name="hidden-%d" % seed, max_tokens=128)
        texts = random_texts(rng, vocab[1:], 12)
        with tempfile.TemporaryDirectory() as out:
            export_torch.export_model(out, config, enc.state_dict(),
                                      vocab=vocab, dtype=dtype)
            with torch.no_grad():
                want_tokens, want_pooled = enc.encode(
                    [tokenize(t) for t in texts])
            levels = harness.cpu_levels()
            level = levels[seed % len(levels)]
            server = harness.Server([out], "--cpu_isa=" + level, metrics=False)
            try:
                req = embedder_pb2.EmbedRequest(inputs=texts)
                toks = server.stub.EmbedTokens(req)
                emb = server.stub.Embed(req)
                info = server.stub.ListModels(
                    embedder_pb2.ListModelsRequest()).models[0]
            finally:
                server.close()
        what = "seed %d (%s, %s, %s)" % (seed, level, dtype, tower)
        self.assertEqual(info.token_dimension, enc.token_dim)
        self.assertEqual(info.dimension, enc.output_dim)
        for i, r in enumerate(toks.results):
            got = [list(v.values) for v in r.vectors]
            assert_close(self, np.reshape(got, (-1, enc.token_dim)),
                         want_tokens[i].numpy(), "%s tokens %d" % (what, i))
        assert_close(self, [list(e.values) for e in emb.embeddings],
                     want_pooled.numpy(), what + " pooled")

    def test_random_single_encoders(self):
        base = random.SystemRandom().randrange(1 << 30)
        for k in range(4):
            with self.subTest(seed=base + k):
                self.check_single(base + k)

    def test_random_dual_encoder_with_comparator(self):
        seed = random.SystemRandom().randrange(1 << 30)
        rng = random.Random(seed)
        torch.manual_seed(seed)
        vocab = ["<unk>"] + ["q%d" % i for i in range(30)]
        t0 = random_tower(rng, 8)
        for m in t0["encoder"]:
            m["prefix"] = m["prefix"].replace("enc.", "q.")
        t0["embedding"]["tensor"] = "q_emb.weight"
        probe = TorchEncoder(t0, vocab=vocab, embedding_dim=8)
        dim = probe.output_dim
        t1 = {"embedding": {"kind": "table", "tensor": "a_emb.weight",
                            "vocab": "vocab.txt", "unk_token": "<unk>"},
              "pooling": "mean"}
        config = {"name": "dual-%d" % seed, "max_tokens": 128,
                  "towers": {"enc0": t0, "enc1": t1},
                  "comparator": {"layers": [
                      {"prefix": "cmp.0", "activation": "tanh"},
                      {"prefix": "cmp.1"}], "output": "sigmoid"}}
        dual = DualEncoder(config, {"enc0": {"vocab": vocab, "embedding_dim": 8},
                                    "enc1": {"vocab": vocab,
                                             "embedding_dim": dim}},
                           comparator_sizes=[7, 1])
        a = random_texts(rng, vocab[1:], 6)
        b = random_texts(rng, vocab[1:], 6)
        with torch.no_grad():
            _, u = dual.enc0.encode([tokenize(t) for t in a])
            _, v = dual.enc1.encode([tokenize(t) for t in b])
            want = dual.score(u, v)
        with tempfile.TemporaryDirectory() as out:
            export_torch.export_model(out, config, dual.state_dict(), vocab=vocab)
            levels = harness.cpu_levels()
            level = levels[seed % len(levels)]
            server = harness.Server([out], "--cpu_isa=" + level, metrics=False)
            try:
                scores = server.stub.Score(embedder_pb2.ScoreRequest(pairs=[
                    embedder_pb2.Pair(a=x, b=y) for x, y in zip(a, b)]))
                enc1 = server.stub.Embed(embedder_pb2.EmbedRequest(
                    inputs=b, tower="enc1"))
                with self.assertRaises(grpc.RpcError) as cm:
                    server.stub.Embed(embedder_pb2.EmbedRequest(
                        inputs=a, tower="enc2"))
                info = server.stub.ListModels(
                    embedder_pb2.ListModelsRequest()).models[0]
            finally:
                server.close()
        assert_close(self, scores.scores, want.numpy(),
                     "scores seed %d (%s)" % (seed, level))
        assert_close(self, [list(e.values) for e in enc1.embeddings],
                     v.numpy(), "enc1 seed %d" % seed)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn('has no tower "enc2"; towers: enc0, enc1',
                      cm.exception.details())
        self.assertEqual(list(info.towers), ["enc0", "enc1"])
        self.assertTrue(info.has_comparator)


class BadWeightsTest(unittest.TestCase):
    """A weights file that does not fit its config stops the server with a
    line naming the tensor."""

    def test_mismatch_names_the_tensor(self):
        golden = os.path.join(harness.GOLDEN, "torch", "lstm_uni_odd")
        with tempfile.TemporaryDirectory() as out:
            for f in ("model.safetensors", "vocab.txt"):
                with open(os.path.join(golden, f), "rb") as src, \
                        open(os.path.join(out, f), "wb") as dst:
                    dst.write(src.read())
            config = harness.read(os.path.join(golden, "config.json"))
            with open(os.path.join(out, "config.json"), "w") as f:
                f.write(config.replace('"hidden_size": 37', '"hidden_size": 36'))
            code, err = harness.run_server_expecting_failure([out])
            self.assertEqual(code, 1)
            self.assertIn("tensor rnn.weight_ih_l0: expected shape [144, 23], "
                          "got [148, 23]", err)
            with open(os.path.join(out, "config.json"), "w") as f:
                f.write(config)
            with open(os.path.join(out, "model.safetensors"), "rb") as f:
                data = f.read()
            with open(os.path.join(out, "model.safetensors"), "wb") as f:
                f.write(data[:-3])
            code, err = harness.run_server_expecting_failure([out])
            self.assertEqual(code, 1)
            self.assertIn("model.safetensors", err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)


if __name__ == "__main__":
    unittest.main()


class SafetensorsReaderTest(unittest.TestCase):
    """tools/export_torch.py reads back what it writes (training continues
    from a saved model with it), in each dtype, metadata skipped."""

    def test_round_trip(self):
        g = torch.Generator().manual_seed(3)
        tensors = {"a.weight": torch.randn(7, 5, generator=g) * 100,
                   "b": torch.randn(3, generator=g), "c": torch.zeros(0, 4)}
        with tempfile.TemporaryDirectory() as out:
            path = os.path.join(out, "t.safetensors")
            for dtype in ("f32", "f16", "bf16"):
                export_torch.save_safetensors(path, tensors, dtype,
                                              metadata={"k": "v"})
                got = export_torch.load_safetensors(path)
                self.assertEqual(sorted(got), sorted(tensors), dtype)
                for name, t in tensors.items():
                    self.assertEqual(got[name].dtype, torch.float32)
                    self.assertTrue(torch.equal(
                        got[name], export_torch.round_to(dtype, t)),
                        "%s %s" % (dtype, name))
            with open(path, "rb") as f:  # a dtype the reader does not know
                data = f.read()
            with open(path, "wb") as f:  # same length: the offsets still hold
                f.write(data.replace(b'"BF16"', b'"I64" '))
            with self.assertRaisesRegex(ValueError, "dtype I64"):
                export_torch.load_safetensors(path)
