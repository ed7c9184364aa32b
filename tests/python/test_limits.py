"""Resource limits tried as an abusive client would, against the real
binary: compressed bodies, huge inputs, huge tokens, and model files that
say two things. Memory is read from the server process (VmHWM)."""
import http.client
import json
import os
import queue
import re
import shutil
import socket
import tempfile
import threading
import unittest
import urllib.request

import harness
from harness import embedder_pb2, grpc, health_pb2

SG_D8 = os.path.join(harness.GOLDEN, "models", "sg_d8")


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class LimitsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server([SG_D8], "--max_message_bytes=%d" % (96 << 20))

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def serving(self):
        reply = self.server.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING)
        ok = self.server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a dog"]),
                                    timeout=10)
        self.assertEqual(len(ok.embeddings), 1)

    def test_compressed_requests_are_refused_before_inflating(self):
        # 50 MB of text that gzip packs into about 50 KB.
        bomb = embedder_pb2.EmbedRequest(inputs=["a " * (25 << 20)])
        with self.assertRaises(grpc.RpcError) as cm:
            self.server.stub.Embed(bomb, compression=grpc.Compression.Gzip,
                                   timeout=60)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("gzip", cm.exception.details())
        self.assertLess(peak_rss_mb(self.server.proc.pid), 300)
        self.serving()

    def test_a_huge_input_is_refused_without_tokenizing_it_all(self):
        # 40 MB of one-letter words: 20M tokens, max_tokens is far lower.
        text = "a " * (20 << 20)
        for method in (self.server.stub.Embed, self.server.stub.Tokenize):
            req = (embedder_pb2.EmbedRequest if method == self.server.stub.Embed
                   else embedder_pb2.TokenizeRequest)(inputs=[text])
            with self.assertRaises(grpc.RpcError) as cm:
                method(req, timeout=60)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("input 0 has %d tokens; max_tokens" % (20 << 20),
                          cm.exception.details())
        # Message bytes (two copies of 40 MB) plus a model: no token list
        # of 20M strings (about 1 GB) was ever built.
        self.assertLess(peak_rss_mb(self.server.proc.pid), 600)
        self.serving()

    def test_long_names_get_a_final_code_not_resource_exhausted(self):
        for kw, code in ((dict(model="x" * 10000), grpc.StatusCode.NOT_FOUND),
                         (dict(tower="t" * 10000), grpc.StatusCode.INVALID_ARGUMENT)):
            with self.assertRaises(grpc.RpcError) as cm:
                self.server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a"], **kw),
                                       timeout=10)
            self.assertEqual(cm.exception.code(), code, cm.exception.details())
            self.assertLessEqual(len(cm.exception.details()), 1024)
            self.assertTrue(cm.exception.details().endswith("..."))
        reply = self.server.stub.Embed(embedder_pb2.EmbedRequest(
            inputs=["a"], request_id="r" * 10000), timeout=10)
        self.assertEqual(reply.request_id, "r" * 10000)

    def test_tokenize_truncates_and_counts(self):
        info = self.server.stub.ListModels(embedder_pb2.ListModelsRequest()).models[0]
        n = info.max_tokens + 5
        reply = self.server.stub.Tokenize(embedder_pb2.TokenizeRequest(
            inputs=["w " * n, "the dog"], truncate=True))
        self.assertEqual(len(reply.results[0].tokens), info.max_tokens)
        self.assertEqual(reply.results[0].token_count, n)
        self.assertEqual(list(reply.results[1].tokens), ["the", "dog"])
        self.assertEqual(reply.results[1].token_count, 2)

    def test_a_huge_word_is_cut_to_max_token_bytes(self):
        word = "x" * (20 << 20)
        reply = self.server.stub.Tokenize(embedder_pb2.TokenizeRequest(
            inputs=[word + " y"]))
        self.assertEqual([len(t) for t in reply.results[0].tokens], [1024, 1])
        cut = self.server.stub.Embed(embedder_pb2.EmbedRequest(inputs=[word]),
                                     timeout=60)
        short = self.server.stub.Embed(embedder_pb2.EmbedRequest(
            inputs=["x" * 1024]), timeout=60)
        self.assertEqual(list(cut.embeddings[0].values),
                         list(short.embeddings[0].values))
        self.serving()


class ConnectionLimitsTest(unittest.TestCase):

    def test_idle_connections_are_closed(self):
        server = harness.Server([SG_D8], "--max_connection_idle_ms=300")
        self.addCleanup(server.close)
        states = []
        done = threading.Event()

        def watch(state):
            states.append(state)
            if state == grpc.ChannelConnectivity.IDLE and \
                    grpc.ChannelConnectivity.READY in states:
                done.set()
        server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a"]), timeout=10)
        server.channel.subscribe(watch)
        self.addCleanup(server.channel.unsubscribe, watch)
        # The server's GOAWAY after 300 ms idle takes the channel from READY
        # back to IDLE; bounded wait.
        self.assertTrue(done.wait(20), states)
        reply = server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a"]),
                                  timeout=10)  # reconnects
        self.assertEqual(len(reply.embeddings), 1)


    def test_max_connections_refuses_calls_on_further_grpc_connections(self):
        server = harness.Server([SG_D8], "--max_connections=2")
        self.addCleanup(server.close)
        target = "127.0.0.1:%d" % server.grpc_port

        def connection():
            # A local subchannel pool: a connection of its own, not shared
            # with the other channels of this process.
            channel = grpc.insecure_channel(
                target, options=[("grpc.use_local_subchannel_pool", 1)])
            self.addCleanup(channel.close)
            return channel, harness.embedder_pb2_grpc.EmbedderStub(channel)

        # Two connections hold a call each: an open EmbedStream, answered
        # once so it has surely reached the server.
        streams = []
        for _ in range(2):
            channel, stub = connection()
            requests = queue.Queue()
            requests.put(embedder_pb2.EmbedRequest(inputs=["a dog"]))
            replies = stub.EmbedStream(iter(requests.get, None), timeout=60)
            self.assertEqual(len(next(replies).embeddings), 1)
            streams.append((stub, requests, replies))
        _, third = connection()
        with self.assertRaises(grpc.RpcError) as cm:
            third.Embed(embedder_pb2.EmbedRequest(inputs=["a"]), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("--max_connections=2", cm.exception.details())
        # A connection that holds a call takes more; health always answers.
        reply = streams[0][0].Embed(embedder_pb2.EmbedRequest(inputs=["a"]),
                                    timeout=10)
        self.assertEqual(len(reply.embeddings), 1)
        health = harness.health_pb2_grpc.HealthStub(
            grpc.insecure_channel(target, options=[
                ("grpc.use_local_subchannel_pool", 1)]))
        self.assertEqual(health.Check(health_pb2.HealthCheckRequest(),
                                      timeout=10).status,
                         health_pb2.HealthCheckResponse.SERVING)
        # A stream ends: its place frees (once the server has released the
        # call, just after the client sees its end: bounded retries), and
        # the third connection gets in.
        _, requests, replies = streams.pop()
        requests.put(None)
        self.assertEqual(list(replies), [])
        for _ in range(100):
            try:
                reply = third.Embed(embedder_pb2.EmbedRequest(inputs=["a"]),
                                    timeout=10)
                break
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                threading.Event().wait(0.05)
        self.assertEqual(len(reply.embeddings), 1)
        streams[0][1].put(None)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" %
                                    server.metrics_port, timeout=10) as r:
            text = r.read().decode()
        refused = re.search(
            r'ctxembed_rejected_total\{model="",reason="connections"\} (\d+)',
            text)
        self.assertIsNotNone(refused, text)
        self.assertGreaterEqual(int(refused[1]), 1)

    def test_max_connections_answers_further_http_connections_503(self):
        server = harness.Server([SG_D8], "--max_connections=2")
        self.addCleanup(server.close)
        address = ("127.0.0.1", server.http_port)
        body = json.dumps({"input": "a dog"})
        headers = {"Content-Type": "application/json"}

        def post(conn):
            conn.request("POST", "/v1/embeddings", body, headers)
            response = conn.getresponse()
            return response.status, response.getheader("Retry-After"), \
                json.loads(response.read())

        held = [http.client.HTTPConnection(*address, timeout=10)
                for _ in range(2)]
        for conn in held:
            self.addCleanup(conn.close)
            self.assertEqual(post(conn)[0], 200)  # keep-alive: stays open
        extra = http.client.HTTPConnection(*address, timeout=10)
        self.addCleanup(extra.close)
        status, retry_after, answer = post(extra)
        self.assertEqual((status, retry_after), (503, "1"))
        self.assertIn("--max_connections=2", answer["error"]["message"])
        extra.close()
        # The held connections still serve.
        self.assertEqual(post(held[0])[0], 200)
        # One closes; a new connection is served once the server has seen
        # the close (bounded retries).
        held.pop().close()
        for _ in range(100):
            conn = http.client.HTTPConnection(*address, timeout=10)
            self.addCleanup(conn.close)
            status = post(conn)[0]
            conn.close()
            if status == 200:
                break
            self.assertEqual(status, 503)
            threading.Event().wait(0.05)
        self.assertEqual(status, 200)


class AnswerSizeTest(unittest.TestCase):

    def test_an_answer_over_the_message_limit_is_refused_before_work(self):
        server = harness.Server([SG_D8], "--max_message_bytes=65536")
        self.addCleanup(server.close)
        # 64 inputs x 64 tokens x 8 floats = 128 KB of floats at least.
        req = embedder_pb2.EmbedRequest(inputs=["w " * 64] * 64)
        with self.assertRaises(grpc.RpcError) as cm:
            server.stub.EmbedTokens(req, timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.OUT_OF_RANGE)
        self.assertIn("the answer would hold 32768 floats (at least 131072 "
                      "bytes); max_message_bytes is 65536", cm.exception.details())
        # The same inputs as sentence vectors fit.
        self.assertEqual(len(server.stub.Embed(req, timeout=10).embeddings), 64)


class TokenBudgetTest(unittest.TestCase):

    def test_a_request_over_the_whole_budget_is_out_of_range(self):
        server = harness.Server([SG_D8], "--max_inflight_tokens=100")
        self.addCleanup(server.close)
        with self.assertRaises(grpc.RpcError) as cm:
            server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["w " * 60] * 2),
                              timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.OUT_OF_RANGE)
        self.assertIn("request has 120 tokens; max_inflight_tokens is 100",
                      cm.exception.details())
        reply = server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["w " * 60]),
                                  timeout=10)
        self.assertEqual(len(reply.embeddings), 1)


class ModelFileLimitsTest(unittest.TestCase):

    def test_a_fifo_in_place_of_a_file_is_refused_without_waiting(self):
        with tempfile.TemporaryDirectory() as d:
            shutil.copytree(SG_D8, d, dirs_exist_ok=True)
            os.remove(os.path.join(d, "vectors.bin"))
            os.mkfifo(os.path.join(d, "vectors.bin"))
            code, err = harness.run_server_expecting_failure([d], timeout_s=30)
            self.assertEqual(code, 1)
            self.assertIn("vectors.bin: not a regular file", err)

    def test_a_message_limit_below_one_answer_is_refused(self):
        code, err = harness.run_server_expecting_failure(
            [SG_D8], "--max_message_bytes=1024")
        self.assertEqual(code, 1)
        self.assertIn('--max_message_bytes=1024 is smaller than one EmbedTokens '
                      'answer of model "sg_d8" (max_tokens 64 x 8 floats = 2048 '
                      'bytes)', err)

    def test_duplicate_config_keys_are_refused(self):
        with tempfile.TemporaryDirectory() as d:
            shutil.copytree(SG_D8, d, dirs_exist_ok=True)
            with open(os.path.join(d, "config.json")) as f:
                text = f.read()
            with open(os.path.join(d, "config.json"), "w") as f:
                f.write(text.replace("{", '{"max_tokens": 9, ', 1))
            json.loads(text)  # the original is fine
            code, err = harness.run_server_expecting_failure([d])
            self.assertEqual(code, 1)
            self.assertIn('key "max_tokens" appears twice in one object', err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)


if __name__ == "__main__":
    unittest.main()
