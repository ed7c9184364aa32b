"""Dynamic batching seen from outside: the real server under load from
bench/loadgen (loopback, bounded runs), checked through its metrics."""
import json
import os
import re
import subprocess
import tempfile
import unittest
import urllib.request

import harness
from harness import embedder_pb2, grpc

MODEL = os.path.join(harness.GOLDEN, "torch", "bigru_2l_odd")
LOADGEN = os.path.join(harness.BUILD_DIR, "bench", "loadgen")


def metric(text, series):
    m = re.search(r"^%s ([0-9.e+-]+)$" % re.escape(series), text, re.M)
    return float(m.group(1)) if m else 0.0


class BatchingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.sentences = os.path.join(cls.tmp.name, "sentences.txt")
        with open(cls.sentences, "w") as f:
            for i in range(500):
                f.write(" ".join("w%d" % ((i * 7 + k) % 60)
                                 for k in range(5 + i % 25)) + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def scrape(self, server):
        url = "http://127.0.0.1:%d/metrics" % server.metrics_port
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    def load(self, server, **flags):
        args = [LOADGEN, "--target=127.0.0.1:%d" % server.grpc_port,
                "--sentences=" + self.sentences, "--warmup_s=0.2"]
        args += ["--%s=%s" % kv for kv in flags.items()]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def test_concurrent_callers_are_batched(self):
        server = harness.Server([MODEL])
        try:
            report = self.load(server, mode="closed", concurrency=64,
                               duration_s=2, max_per_request=3)
            text = self.scrape(server)
            check = subprocess.run(["promtool", "check", "metrics"],
                                   input=text, capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        finally:
            server.close()
        self.assertEqual(list(report["codes"]), ["OK"])
        m = 'ctxembed_batch_size_%s{model="bigru_2l_odd"}'
        batches = metric(text, m % "count")
        sentences = metric(text, m % "sum")
        self.assertGreater(batches, 0)
        self.assertGreater(sentences / batches, 2.0,
                           "64 callers should make batches well above 1")
        for name in ("ctxembed_queue_duration_seconds_count",
                     "ctxembed_batch_tokens_count",
                     "ctxembed_padding_ratio_count"):
            self.assertGreater(metric(text, name + '{model="bigru_2l_odd"}'), 0)
        self.assertIn('ctxembed_queue_depth{model="bigru_2l_odd"}', text)

    def test_overload_is_refused_fast_and_the_server_goes_on(self):
        server = harness.Server([MODEL], "--max_queue_sentences=16",
                                "--num_batch_workers=1")
        try:
            report = self.load(server, mode="open", rate=20000, duration_s=1.5,
                               max_per_request=4)
            text = self.scrape(server)
            # Still serving, and answers are right after the storm.
            r = server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["w1 w2"]))
            self.assertEqual(len(r.embeddings), 1)
            code, err = server.stop()
            self.assertEqual(code, 0, err)
        finally:
            server.close()
        self.assertGreater(report["codes"].get("RESOURCE_EXHAUSTED", 0), 0)
        self.assertGreater(report["codes"].get("OK", 0), 0)
        self.assertGreater(metric(
            text, 'ctxembed_rejected_total{model="bigru_2l_odd",reason="overloaded"}'), 0)

    def test_expired_and_cancelled_requests_are_counted(self):
        server = harness.Server([MODEL], "--num_batch_workers=1")
        try:
            # Deadlines far too short for the queue: they fail, and the
            # server drops their work (deadline) or is told (cancelled).
            report = self.load(server, mode="open", rate=5000, duration_s=1,
                               max_per_request=8, deadline_ms=1)
            text = self.scrape(server)
        finally:
            server.close()
        self.assertGreater(report["codes"].get("DEADLINE_EXCEEDED", 0), 0)
        dropped = sum(metric(text, 'ctxembed_rejected_total{model="bigru_2l_odd",reason="%s"}' % r)
                      for r in ("deadline", "cancelled"))
        self.assertGreater(dropped, 0)

    def test_stream_through_the_batcher(self):
        server = harness.Server([MODEL], metrics=False)
        try:
            reqs = [embedder_pb2.EmbedRequest(
                inputs=["w%d w%d" % (i, i + 1)] * (1 + i % 3), request_id=str(i))
                for i in range(40)]
            out = list(server.stub.EmbedStream(iter(reqs)))
            single = server.stub.Embed(embedder_pb2.EmbedRequest(
                inputs=["w5 w6"]))
        finally:
            server.close()
        self.assertEqual([r.request_id for r in out], [str(i) for i in range(40)])
        self.assertEqual([len(r.embeddings) for r in out],
                         [1 + i % 3 for i in range(40)])
        for a, b in zip(out[5].embeddings[0].values, single.embeddings[0].values):
            self.assertAlmostEqual(a, b, places=6)


if __name__ == "__main__":
    unittest.main()
