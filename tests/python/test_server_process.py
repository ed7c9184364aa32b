"""The server binary as an operator sees it: refusing bad models with one
clear line, shutting down cleanly on signals, exposing valid Prometheus
metrics, and the CLI agreeing with it."""
import collections
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import harness
from harness import embedder_pb2, embedder_pb2_grpc, grpc

SG_D8 = os.path.join(harness.GOLDEN, "models", "sg_d8")
CONFIG = ('{"ctxembed_format": 1, "name": "m", "max_tokens": 16, '
          '"embedding": {"kind": "fasttext", "file": "%s"}, "encoder": []}')


class BadModelTest(unittest.TestCase):
    """Each broken model makes the server exit 1 with one line naming the
    file and the problem; never a crash."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ctxembed_bad_model_")
        with open(os.path.join(SG_D8, "vectors.bin"), "rb") as f:
            self.good_bin = f.read()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, data):
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(os.path.join(self.dir, name), mode) as f:
            f.write(data)

    def expect_refusal(self, *expected):
        code, err = harness.run_server_expecting_failure([self.dir])
        lines = err.strip().splitlines()
        self.assertEqual(code, 1, err)
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("ctxembed-server: error: "), err)
        for e in expected:
            self.assertIn(e, lines[0])
        return lines[0]

    def test_missing_directory_and_files(self):
        self.expect_refusal(os.path.join(self.dir, "config.json"),
                            "No such file")
        self.write("config.json", CONFIG % "vectors.bin")
        self.expect_refusal(os.path.join(self.dir, "vectors.bin"),
                            "No such file")

    def test_config_errors(self):
        self.write("config.json", '{"ctxembed_format": 1,')
        self.expect_refusal("config.json: invalid JSON at byte")
        self.write("config.json", '{"ctxembed_format": 1, "name": "m"}')
        self.expect_refusal('config.json: key "embedding": required key')
        self.write("config.json", (CONFIG % "v.bin").replace(
            '"encoder"', '"encodr"'))
        self.expect_refusal('key "encodr": unknown key')

    def test_bad_vectors(self):
        self.write("config.json", CONFIG % "vectors.bin")
        cases = [
            (b"\x00" * 3, "vectors.bin"),
            (b"garbage that is not a model\n", "line 1"),
            (self.good_bin[:4] + struct.pack("<i", 99) + self.good_bin[8:],
             "unsupported fastText format version 99"),
            (self.good_bin[:8] + struct.pack("<i", 0) + self.good_bin[12:],
             "dim 0 is outside"),
            (self.good_bin[:64] + struct.pack("<iii", 2**31 - 1, 2**31 - 2, 1)
             + self.good_bin[76:], "the file is too short"),
            (b"2 3\nab 1 2 3\ncd 4 5\n", "line 3: 2 values; the header says dim 3"),
        ]
        for data, expected in cases:
            with self.subTest(expected=expected):
                self.write("vectors.bin", data)
                self.expect_refusal("vectors.bin", expected)

    def test_truncated_files(self):
        self.write("config.json", CONFIG % "vectors.bin")
        size = len(self.good_bin)
        for cut in (0, 1, 5, 60, 100, 4000, size // 2, size - 40, size - 1):
            with self.subTest(cut=cut):
                self.write("vectors.bin", self.good_bin[:cut])
                self.expect_refusal("vectors.bin")

    def test_files_from_before_fasttext_09(self):
        ext = os.path.join(harness.SHARED, "data", "fasttext-external")
        if not os.path.isdir(ext):
            self.skipTest("%s is missing (../shared is not beside this "
                          "checkout)" % ext)
        for name in ("non_ascii_fasttext.bin", "lee_fasttext.bin"):
            with self.subTest(name=name):
                self.write("config.json",
                           CONFIG % os.path.join(ext, name))
                self.expect_refusal(name, "before version 0.9")

    def test_bad_flags(self):
        code, err = harness.run_server_expecting_failure(
            [SG_D8], "--max_inputs_per_request=0")
        self.assertEqual(code, 1)
        self.assertIn("max_inputs_per_request is 0", err)
        code, err = subprocess.run([harness.SERVER], capture_output=True,
                                   text=True).returncode, ""
        self.assertEqual(code, 1)


class CpuLevelTest(unittest.TestCase):
    """--cpu_isa: every level this CPU runs can be chosen, is logged and
    exported; unknown or unsupported levels stop the server with one line."""

    def test_each_level_is_logged_and_exported(self):
        levels = harness.cpu_levels()
        vectors = []
        for level in levels + ["auto"]:
            with self.subTest(level=level):
                server = harness.Server([SG_D8], "--cpu_isa=" + level)
                try:
                    reply = server.stub.Embed(embedder_pb2.EmbedRequest(
                        inputs=["the dog bit the man"]))
                    url = "http://127.0.0.1:%d/metrics" % server.metrics_port
                    with urllib.request.urlopen(url, timeout=10) as r:
                        text = r.read().decode()
                finally:
                    server.close()
                chosen = levels[-1] if level == "auto" else level
                name = "x86-64-" + chosen if chosen != "generic" else chosen
                self.assertIn("kernels %s (--cpu_isa=%s)" % (name, level),
                              "".join(server.log))
                self.assertRegex(text, r'ctxembed_build_info\{[^}]*isa="%s"\} 1'
                                 % re.escape(name))
                vectors.append(list(reply.embeddings[0].values))
        # A bag of vectors runs no kernel: the same bits on every level.
        self.assertTrue(all(v == vectors[0] for v in vectors))

    def test_bad_levels_are_refused(self):
        code, err = harness.run_server_expecting_failure([SG_D8],
                                                         "--cpu_isa=avx9")
        self.assertEqual(code, 1)
        self.assertIn('--cpu_isa: unknown CPU level "avx9"', err)
        missing = [l for l in ("v2", "v3", "v4") if l not in harness.cpu_levels()]
        if not missing:
            self.skipTest("this CPU runs every level")
        code, err = harness.run_server_expecting_failure(
            [SG_D8], "--cpu_isa=" + missing[-1])
        self.assertEqual(code, 1)
        self.assertIn("cannot run the %s kernels" % missing[-1], err)


class LifecycleTest(unittest.TestCase):

    def test_sigterm_and_sigint_exit_cleanly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig):
                server = harness.Server([SG_D8], metrics=False)
                try:
                    server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a"]))
                    code, err = server.stop(sig)
                    self.assertEqual(code, 0, err)
                    self.assertIn("draining", err)
                    self.assertIn("stopped", err)
                finally:
                    server.close()

    def test_drain_under_load_resets_no_call(self):
        """SIGTERM under 16 callers that watch health (gRPC client-side
        health checking, which the lame duck is for): every call ends OK or
        UNAVAILABLE, none CANCELLED, and a long call in flight at SIGTERM
        gets its answer."""
        server = harness.Server([SG_D8], "--lame_duck_ms=1000",
                                metrics=False)
        config = json.dumps({
            "loadBalancingConfig": [{"round_robin": {}}],
            "healthCheckConfig": {"serviceName": "ctxembed.v1.Embedder"}})
        channel = grpc.insecure_channel(
            "127.0.0.1:%d" % server.grpc_port,
            options=[("grpc.service_config", config)])
        try:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            request = embedder_pb2.EmbedRequest(inputs=["the cat sat"])
            codes = collections.Counter()
            lock = threading.Lock()

            def caller():
                for _ in range(20000):  # bounded; ends soon after the exit
                    try:
                        stub.Embed(request, timeout=30)
                        code = grpc.StatusCode.OK
                    except grpc.RpcError as e:
                        code = e.code()
                    with lock:
                        codes[code] += 1
                    if (code != grpc.StatusCode.OK and
                            server.proc.poll() is not None):
                        return

            threads = [threading.Thread(target=caller) for _ in range(16)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            long_call = stub.Embed.future(embedder_pb2.EmbedRequest(
                inputs=["a long sentence of many words %d" % i
                        for i in range(256)], truncate=True), timeout=30)
            code, err = server.stop()
            for t in threads:
                t.join(timeout=60)
            self.assertEqual(code, 0, err)
            self.assertEqual(len(long_call.result().embeddings), 256)
            self.assertGreater(codes[grpc.StatusCode.OK], 0)
            self.assertGreater(codes[grpc.StatusCode.UNAVAILABLE], 0, codes)
            self.assertEqual(
                set(codes), {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE},
                codes)
        finally:
            channel.close()
            server.close()


class MetricsAndCliTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server([SG_D8])

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def scrape(self):
        url = "http://127.0.0.1:%d/metrics" % self.server.metrics_port
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    @staticmethod
    def value(text, series):
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    def test_metrics_pass_promtool_and_count_calls(self):
        stub = self.server.stub
        ok = 'ctxembed_requests_total{code="OK",method="Embed"}'
        bad = 'ctxembed_requests_total{code="INVALID_ARGUMENT",method="Embed"}'
        hist = 'ctxembed_request_duration_seconds_count{method="Embed"}'
        tokens = 'ctxembed_input_tokens_total{model="sg_d8"}'
        before = self.scrape()
        for _ in range(5):
            stub.Embed(embedder_pb2.EmbedRequest(inputs=["the dog", "a cat"]))
        with self.assertRaises(grpc.RpcError):
            stub.Embed(embedder_pb2.EmbedRequest())
        text = self.scrape()
        check = subprocess.run(["promtool", "check", "metrics"], input=text,
                               capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertEqual(self.value(text, ok) - self.value(before, ok), 5)
        self.assertEqual(self.value(text, bad) - self.value(before, bad), 1)
        self.assertEqual(self.value(text, hist) - self.value(before, hist), 6)
        self.assertEqual(self.value(text, tokens) - self.value(before, tokens),
                         20)
        for expected in [
                'ctxembed_request_duration_seconds_bucket{method="Embed",le="5e-05"}',
                'ctxembed_request_duration_seconds_bucket{method="Embed",le="10"}',
                'ctxembed_inference_duration_seconds_count{model="sg_d8"}',
                'ctxembed_inflight_requests 0',
                'ctxembed_model_info{architecture="bag_of_vectors",dim="8",model="sg_d8"} 1',
                'ctxembed_model_load_seconds{model="sg_d8"}']:
            self.assertIn(expected, text)

    def test_cli_remote_equals_local(self):
        texts = ["the dog bit the man", "", "東京 café"]
        server = "--server=127.0.0.1:%d" % self.server.grpc_port

        def run(*args):
            p = subprocess.run([harness.CLI] + list(args),
                               input="\n".join(texts) + "\n",
                               capture_output=True, text=True, check=True)
            return [json.loads(line) for line in p.stdout.splitlines()]

        remote = run("embed", server)
        local = run("embed", "--local", "--model_dir=" + SG_D8)
        self.assertEqual(remote, local)
        sif_remote = run("embed", server, "--pooling=sif")
        self.assertEqual(sif_remote, run("embed", "--local", "--pooling=sif",
                                         "--model_dir=" + SG_D8))
        self.assertNotEqual(sif_remote[0]["embedding"], remote[0]["embedding"])
        self.assertEqual([r["input"] for r in remote], texts)
        self.assertEqual(len(remote[0]["embedding"]), 8)
        tokens = run("tokenize", server)
        self.assertEqual(tokens[2]["tokens"], ["東京", "café"])
        models = run("models", server)
        self.assertEqual(models[0]["name"], "sg_d8")
        self.assertEqual(models[0]["dimension"], 8)
        per_token = run("tokens", server)
        self.assertEqual(len(per_token[0]["vectors"]), 5)

    def test_cli_reports_errors(self):
        p = subprocess.run([harness.CLI, "embed",
                            "--server=127.0.0.1:%d" % self.server.grpc_port,
                            "w " * 65], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("INVALID_ARGUMENT: input 0 has 65 tokens", p.stderr)
        p = subprocess.run([harness.CLI, "embed", "--pooling=SIF", "x",
                            "--server=127.0.0.1:%d" % self.server.grpc_port],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--pooling=SIF: expected fasttext, mean, max, last or sif",
                      p.stderr)


if __name__ == "__main__":
    unittest.main()
