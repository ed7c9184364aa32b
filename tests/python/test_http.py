"""The HTTP/JSON front door against the real server, with Python's own
http.client: OpenAI's /v1/embeddings and the text-embeddings-inference
routes give gRPC's vectors; errors have OpenAI's shape and the right status;
keep-alive, pipelining, bad and slow clients, disconnects."""
import base64
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import harness
from harness import embedder_pb2, grpc

SG_D8 = os.path.join(harness.GOLDEN, "models", "sg_d8")
CBOW = os.path.join(harness.GOLDEN, "models", "cbow_d12")
TEXTS = ["the dog bit the man", "a b", "Ünïcode and emoji 🙂 text"]


def f32(values):
    """JSON numbers (read as doubles) as the float32 values they name: the
    server writes the shortest text that reads back to the same float32."""
    if values and isinstance(values[0], list):
        return [f32(v) for v in values]
    return [struct.unpack("f", struct.pack("f", v))[0] for v in values]


def post(server, path, body, headers=None, raw=False):
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port,
                                      timeout=30)
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    conn.request("POST", path, data,
                 dict({"Content-Type": "application/json"}, **(headers or {})))
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), payload if raw else json.loads(
        payload or b"null")


def get(server, path):
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port,
                                      timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    return r.status, json.loads(payload or b"null")


class HttpRoutesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server([SG_D8, CBOW], "--access_log")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def grpc_embed(self, texts, normalize=True, model=""):
        r = self.server.stub.Embed(embedder_pb2.EmbedRequest(
            inputs=texts, normalize=normalize, model=model))
        return [list(e.values) for e in r.embeddings], r.usage.tokens

    def test_openai_embeddings_equal_grpc_float_and_base64(self):
        want, tokens = self.grpc_embed(TEXTS)
        status, _, body = post(self.server, "/v1/embeddings",
                               {"input": TEXTS, "model": "sg_d8"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["object"], "list")
        self.assertEqual(body["model"], "sg_d8")
        self.assertEqual(body["usage"],
                         {"prompt_tokens": tokens, "total_tokens": tokens})
        got = [d["embedding"] for d in body["data"]]
        self.assertEqual([d["index"] for d in body["data"]], [0, 1, 2])
        # Shortest round-trip text: the very same floats.
        self.assertEqual(f32(got), want)
        status, _, body = post(self.server, "/v1/embeddings",
                               {"input": TEXTS, "encoding_format": "base64"})
        self.assertEqual(status, 200, body)
        for d, w in zip(body["data"], want):
            raw = base64.b64decode(d["embedding"])
            self.assertEqual(list(struct.unpack("<%df" % len(w), raw)), w)
        # A single string; normalize off (an extension field).
        raw_want, _ = self.grpc_embed(["the dog"], normalize=False)
        status, _, body = post(self.server, "/v1/embeddings",
                               {"input": "the dog", "normalize": False,
                                "user": "u1"})
        self.assertEqual(f32(body["data"][0]["embedding"]), raw_want[0])

    def test_curl_gets_grpc_vectors(self):
        out = subprocess.run(
            ["curl", "-sS", "--fail-with-body",
             "http://127.0.0.1:%d/v1/embeddings" % self.server.http_port,
             "-H", "Content-Type: application/json",
             "-d", json.dumps({"input": TEXTS, "model": "cbow_d12"})],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        want, _ = self.grpc_embed(TEXTS, model="cbow_d12")
        self.assertEqual([f32(d["embedding"]) for d in
                          json.loads(out.stdout)["data"]], want)

    def test_tei_routes_equal_grpc(self):
        want, _ = self.grpc_embed(TEXTS)
        status, _, body = post(self.server, "/embed", {"inputs": TEXTS})
        self.assertEqual((status, f32(body)), (200, want))
        raw, _ = self.grpc_embed(["the dog"], normalize=False)
        status, _, body = post(self.server, "/embed",
                               {"inputs": "the dog", "normalize": False})
        self.assertEqual(f32(body), raw)
        tokens = self.server.stub.EmbedTokens(
            embedder_pb2.EmbedRequest(inputs=TEXTS[:2]))
        status, _, body = post(self.server, "/embed_all",
                               {"inputs": TEXTS[:2]})
        self.assertEqual(status, 200)
        self.assertEqual([f32(r) for r in body],
                         [[list(v.values) for v in r.vectors]
                          for r in tokens.results])
        t = self.server.stub.Tokenize(embedder_pb2.TokenizeRequest(
            inputs=TEXTS))
        status, _, body = post(self.server, "/tokenize", {"inputs": TEXTS})
        self.assertEqual([[x["text"] for x in r] for r in body],
                         [list(r.tokens) for r in t.results])
        # /similarity: the cosines Score gives for the same pairs.
        status, _, body = post(self.server, "/similarity", {"inputs": {
            "source_sentence": "the dog", "sentences": TEXTS}})
        self.assertEqual(status, 200, body)
        score = self.server.stub.Score(embedder_pb2.ScoreRequest(pairs=[
            embedder_pb2.Pair(a="the dog", b=t) for t in TEXTS]))
        self.assertEqual(f32(body), list(score.scores))
        status, _, body = post(self.server, "/similarity",
                               {"inputs": ["not", "pairs"]})
        self.assertEqual(status, 400)
        self.assertIn("source_sentence", body["error"]["message"])
        status, body = get(self.server, "/info")
        self.assertEqual(status, 200)
        self.assertEqual((body["model_id"], body["dimension"],
                          body["max_input_length"]), ("sg_d8", 8, 64))
        self.assertEqual(get(self.server, "/health"), (200, {"status": "ok"}))

    def test_errors_have_openai_shape_and_status(self):
        cases = [
            ("/v1/embeddings", b"{not json", 400, "invalid JSON: "),
            ("/v1/embeddings", {"input": [[1, 2]]}, 400, "token ids"),
            ("/v1/embeddings", {"input": "a", "model": "nope"}, 404,
             'model "nope" is not loaded'),
            ("/v1/embeddings", {"input": "a", "dimensions": 4}, 400,
             "dimensions: model \"sg_d8\" gives 8"),
            ("/v1/embeddings", {"input": "a", "encoding_format": "int8"}, 400,
             "encoding_format"),
            ("/v1/embeddings", {}, 400, "input: is required"),
            ("/embed", {"inputs": " ".join(["w"] * 65)}, 400,
             "has 65 tokens; max_tokens"),
            ("/embed", {"inputs": "a", "truncation_direction": "up"}, 400,
             "truncation_direction"),
            ("/embed", {"inputs": ["a"] * 300}, 400, "max_inputs_per_request"),
            ("/nowhere", {}, 404, "no route /nowhere"),
        ]
        for path, body, code, message in cases:
            with self.subTest(path=path, body=body):
                status, _, got = post(self.server, path, body)
                self.assertEqual(status, code, got)
                self.assertIn(message, got["error"]["message"])
                self.assertIn(got["error"]["type"],
                              ("invalid_request_error", "not_found_error"))
        status, _ = get(self.server, "/v1/embeddings")
        self.assertEqual(status, 405)
        # Truncation on request, on either side (the same as gRPC's).
        long_text = " ".join("w%d" % i for i in range(70))
        for direction, enum in (("right", 0), ("left", 1)):
            status, _, body = post(self.server, "/embed",
                                   {"inputs": long_text, "truncate": True,
                                    "truncation_direction": direction})
            self.assertEqual(status, 200)
            want = self.server.stub.Embed(embedder_pb2.EmbedRequest(
                inputs=[long_text], truncate=True, normalize=True,
                truncation_direction=enum)).embeddings[0].values
            self.assertEqual(f32(body[0]), list(want))
        right = self.server.stub.Tokenize(embedder_pb2.TokenizeRequest(
            inputs=[long_text], truncate=True)).results[0].tokens
        left = self.server.stub.Tokenize(embedder_pb2.TokenizeRequest(
            inputs=[long_text], truncate=True,
            truncation_direction=1)).results[0].tokens
        self.assertEqual((right[0], right[-1]), ("w0", "w63"))
        self.assertEqual((left[0], left[-1]), ("w6", "w69"))
        status, _, body = post(self.server, "/tokenize",
                               {"inputs": long_text, "truncate": True,
                                "truncation_direction": "left"})
        self.assertEqual([t["text"] for t in body[0]], list(left))

    def test_keep_alive_and_pipelined_requests_are_answered_in_order(self):
        sock = socket.create_connection(("127.0.0.1", self.server.http_port),
                                        timeout=30)
        requests = b""
        for text in ("a", "the dog", "b"):
            body = json.dumps({"inputs": text}).encode()
            requests += (b"POST /embed HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body)) + body
        sock.sendall(requests)  # all three at once
        data = b""
        deadline = time.monotonic() + 30
        while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(b"]]"):
            self.assertLess(time.monotonic(), deadline)
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        sock.close()
        bodies = [json.loads(part.split(b"\r\n\r\n", 1)[1])
                  for part in data.split(b"HTTP/1.1 ")[1:]]
        want = [self.grpc_embed([t])[0] for t in ("a", "the dog", "b")]
        self.assertEqual([f32(b) for b in bodies], want)

    def test_bad_slow_and_vanishing_clients_do_not_hurt_others(self):
        # A client that sends half a header and waits, one that sends
        # garbage, one that goes away mid-body.
        slow = socket.create_connection(("127.0.0.1", self.server.http_port))
        slow.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\n")
        junk = socket.create_connection(("127.0.0.1", self.server.http_port))
        junk.sendall(b"\x16\x03\x01 this is not http\r\n\r\n")
        gone = socket.create_connection(("127.0.0.1", self.server.http_port))
        gone.sendall(b"POST /embed HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{")
        gone.close()
        t = time.monotonic()
        status, _, body = post(self.server, "/embed", {"inputs": "the dog"})
        self.assertEqual(status, 200)
        self.assertLess(time.monotonic() - t, 5)
        self.assertEqual(junk.recv(1024)[:12], b"")  # closed without answer
        slow.close()
        junk.close()


NODE_DIR = os.path.join(harness.SOURCE_DIR, "tests", "node")


class OpenAiNodeClientTest(unittest.TestCase):
    """The official OpenAI Node.js SDK (npm "openai", installed by
    scripts/setup.sh into tests/node) gets gRPC's vectors."""

    def test_official_client_gets_grpc_vectors(self):
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "openai")):
            self.skipTest("tests/node/node_modules missing: run scripts/setup.sh")
        keys = tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False)
        keys.write("sk-test\n")
        keys.close()
        server = harness.Server([SG_D8], "--api_keys_file=" + keys.name,
                                metrics=False)
        try:
            out = subprocess.run(
                ["node", "openai_client.mjs",
                 "http://127.0.0.1:%d/v1" % server.http_port, "sk-test",
                 "sg_d8"], cwd=NODE_DIR, capture_output=True, text=True,
                timeout=120)
            self.assertEqual(out.returncode, 0, out.stderr)
            got = json.loads(out.stdout)
            r = server.stub.Embed(
                embedder_pb2.EmbedRequest(inputs=TEXTS, normalize=True),
                metadata=[("authorization", "Bearer sk-test")])
            want = [list(e.values) for e in r.embeddings]
            self.assertEqual(f32(got["default"]), want)
            self.assertEqual(f32(got["float"]), want)
            for b64, w in zip(got["base64"], want):
                raw = base64.b64decode(b64)
                self.assertEqual(list(struct.unpack("<%df" % len(w), raw)), w)
            self.assertEqual(got["model"], "sg_d8")
            self.assertEqual(got["usage"]["prompt_tokens"], r.usage.tokens)
            self.assertEqual(got["error"]["status"], 404)
            self.assertEqual(got["error"]["type"], "not_found_error")
            self.assertIn('model "no-such-model" is not loaded',
                          got["error"]["message"])
        finally:
            server.close()
            os.unlink(keys.name)


class HttpLimitsTest(unittest.TestCase):

    def test_body_limit_keys_overload_deadline_and_metrics(self):
        keys = tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False)
        keys.write("k1\n")
        keys.close()
        server = harness.Server(
            [SG_D8], "--max_message_bytes=65536", "--api_keys_file=" + keys.name,
            "--max_queue_sentences=8", "--max_inputs_per_request=64")
        try:
            auth = {"Authorization": "Bearer k1"}
            status, _, body = post(server, "/embed", {"inputs": "a"})
            self.assertEqual(status, 401)
            self.assertEqual(body["error"]["type"], "authentication_error")
            status, _, _ = post(server, "/embed", {"inputs": "a"}, auth)
            self.assertEqual(status, 200)
            self.assertEqual(get(server, "/health")[0], 200)  # needs no key
            big = {"inputs": "x" * 70000}
            status, _, body = post(server, "/embed", big, auth)
            self.assertEqual(status, 413)
            self.assertIn("max_message_bytes", body["error"]["message"])
            # Overload: 8 queued sentences; 32 callers of 8 inputs each, in
            # rounds until two overlap (bounded).
            results = []

            def flood():
                results.append(post(server, "/embed",
                                    {"inputs": ["the dog bit the man"] * 8},
                                    auth))
            for _ in range(20):
                threads = [threading.Thread(target=flood) for _ in range(32)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                if any(r[0] == 429 for r in results):
                    break
            codes = sorted(r[0] for r in results)
            self.assertIn(429, codes)
            limited = [r for r in results if r[0] == 429][0]
            self.assertEqual(limited[1].get("Retry-After"), "1")
            self.assertEqual(limited[2]["error"]["type"], "rate_limit_error")
            # A deadline shorter than any work.
            status, _, body = post(server, "/embed",
                                   {"inputs": ["the dog"] * 4},
                                   dict(auth, **{"X-Request-Timeout-Ms": "1"}))
            self.assertIn(status, (200, 504))
            url = "http://127.0.0.1:%d/metrics" % server.metrics_port
            with urllib.request.urlopen(url, timeout=10) as r:
                text = r.read().decode()
            self.assertIn('ctxembed_requests_total{code="OK",method="http_embed"}',
                          text)
            self.assertIn('code="RESOURCE_EXHAUSTED",method="http_embed"', text)
        finally:
            server.close()
            os.unlink(keys.name)

    def test_matryoshka_models_cut_vectors_to_declared_dimensions(self):
        tmp = tempfile.mkdtemp(prefix="ctxembed_matryoshka_")
        model = os.path.join(tmp, "m")
        shutil.copytree(CBOW, model)
        path = os.path.join(model, "config.json")
        with open(path) as f:
            config = json.load(f)
        config["matryoshka_dimensions"] = [4, 8]
        with open(path, "w") as f:
            json.dump(config, f)
        server = harness.Server([model], metrics=False)
        try:
            raw = server.stub.Embed(embedder_pb2.EmbedRequest(
                inputs=["the dog"])).embeddings[0].values
            prefix = list(raw[:4])
            norm = sum(x * x for x in prefix) ** 0.5
            status, _, body = post(server, "/v1/embeddings",
                                   {"input": "the dog", "dimensions": 4})
            self.assertEqual(status, 200, body)
            got = body["data"][0]["embedding"]
            self.assertEqual(len(got), 4)
            for g, w in zip(got, prefix):
                self.assertAlmostEqual(g, w / norm, places=6)
            status, _, body = post(server, "/v1/embeddings",
                                   {"input": "the dog", "dimensions": 4,
                                    "normalize": False})
            self.assertEqual(f32(body["data"][0]["embedding"]), prefix)
            status, _, body = post(server, "/v1/embeddings",
                                   {"input": "the dog", "dimensions": 5})
            self.assertEqual(status, 400)
            self.assertIn("may be cut to 4, 8 only", body["error"]["message"])
        finally:
            server.close()
        config["matryoshka_dimensions"] = [4, 12]
        with open(path, "w") as f:
            json.dump(config, f)
        code, err = harness.run_server_expecting_failure([model])
        self.assertEqual(code, 1)
        self.assertIn("12 is not shorter than the model's vectors (12)", err)
        shutil.rmtree(tmp)

    def test_auto_truncate_is_the_default_an_http_request_can_override(self):
        server = harness.Server([SG_D8], "--auto_truncate", metrics=False)
        try:
            long_text = " ".join(["w"] * 70)
            r = server.stub.Embed(embedder_pb2.EmbedRequest(inputs=[long_text]))
            self.assertEqual(r.usage.tokens, 64)
            status, _, body = post(server, "/embed", {"inputs": long_text})
            self.assertEqual(status, 200, body)
            status, _, body = post(server, "/embed", {"inputs": long_text,
                                                      "truncate": False})
            self.assertEqual(status, 400)
            self.assertIn("has 70 tokens", body["error"]["message"])
        finally:
            server.close()

    def test_a_deadline_that_passes_in_the_queue_is_504(self):
        # Both workers busy with long inputs of the default bi-LSTM; a call
        # with a 5 ms deadline behind them is dropped (or refused at once).
        model = os.path.join(harness.SOURCE_DIR, "models", "default")
        server = harness.Server([model], "--max_batch_sentences=64",
                                "--max_inputs_per_request=64", metrics=False)
        try:
            long_text = " ".join(["word"] * 250)
            busy = [threading.Thread(target=post, args=(
                server, "/embed", {"inputs": [long_text] * 64,
                                   "truncate": True}))
                for _ in range(4)]
            for t in busy:
                t.start()
            time.sleep(0.05)
            status, _, body = post(server, "/embed", {"inputs": "the dog"},
                                   {"X-Request-Timeout-Ms": "5"})
            for t in busy:
                t.join()
            self.assertEqual(status, 504, body)
            self.assertEqual(body["error"]["code"], "deadline_exceeded")
            status, _, body = post(server, "/embed", {"inputs": "the dog"},
                                   {"X-Request-Timeout-Ms": "soon"})
            self.assertEqual(status, 400)
            self.assertIn("X-Request-Timeout-Ms", body["error"]["message"])
        finally:
            server.close()

    def test_requests_in_flight_at_sigterm_get_their_answers(self):
        model = os.path.join(harness.SOURCE_DIR, "models", "default")
        # An idle timeout shorter than the work: it must not cut the answer.
        server = harness.Server([model], "--max_inputs_per_request=64",
                                "--max_connection_idle_ms=50", metrics=False)
        try:
            long_text = " ".join(["word"] * 250)
            results = []
            calls = [threading.Thread(target=lambda: results.append(post(
                server, "/embed", {"inputs": [long_text] * 64,
                                   "truncate": True})))
                for _ in range(3)]
            for t in calls:
                t.start()
            time.sleep(0.05)
            server.proc.send_signal(15)
            for t in calls:
                t.join()
            self.assertEqual([r[0] for r in results], [200, 200, 200])
            self.assertEqual(server.stop()[0], 0)
        finally:
            server.close()

    def test_a_client_that_hangs_up_cancels_its_queued_work(self):
        model = os.path.join(harness.SOURCE_DIR, "models", "default")
        server = harness.Server([model], "--max_inputs_per_request=64")
        try:
            body = json.dumps({"inputs": [" ".join(["word"] * 250)] * 64,
                               "truncate": True}).encode()
            request = (b"POST /embed HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body)) + body
            socks = []
            for _ in range(6):  # more work than the 2 workers run at once
                s = socket.create_connection(("127.0.0.1", server.http_port))
                s.sendall(request)
                socks.append(s)
            time.sleep(0.05)
            for s in socks:
                s.close()
            url = "http://127.0.0.1:%d/metrics" % server.metrics_port
            series = ('ctxembed_rejected_total{model="ctx-sif-bilstm",'
                      'reason="cancelled"}')
            deadline = time.monotonic() + 30
            cancelled = 0
            while time.monotonic() < deadline and cancelled == 0:
                with urllib.request.urlopen(url, timeout=10) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith(series + " "):
                            cancelled = float(line.split()[-1])
                time.sleep(0.05)
            self.assertGreater(cancelled, 0)
            # The server goes on.
            self.assertEqual(post(server, "/embed", {"inputs": "a"})[0], 200)
        finally:
            server.close()

    def test_shutdown_answers_503_and_health_turns(self):
        server = harness.Server([SG_D8], "--lame_duck_ms=1500", metrics=False)
        try:
            self.assertEqual(get(server, "/health")[0], 200)
            server.proc.send_signal(15)
            deadline = time.monotonic() + 10
            while get(server, "/health")[0] != 503:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.02)
            code, err = server.stop()
            self.assertEqual(code, 0, err)
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main()
