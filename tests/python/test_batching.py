"""Dynamic batching seen from outside: the real server under load from
bench/loadgen (loopback, bounded runs), checked through its metrics."""
import json
import os
import re
import subprocess
import tempfile
import threading
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

    def test_callers_on_streams_are_batched_together(self):
        # loadgen --rpc=stream: each caller's requests on its own
        # EmbedStream, one in flight; the server batches across streams.
        server = harness.Server([MODEL])
        try:
            report = self.load(server, mode="closed", rpc="stream",
                               concurrency=32, duration_s=1.5)
            text = self.scrape(server)
        finally:
            server.close()
        self.assertEqual(list(report["codes"]), ["OK"])
        self.assertGreater(report["requests_per_s"], 0)
        requests = 'ctxembed_requests_total{code="OK",method="%s"}'
        self.assertGreater(metric(text, requests % "EmbedStream"), 0)
        self.assertEqual(metric(text, requests % "Embed"), 0)
        m = 'ctxembed_batch_size_%s{model="bigru_2l_odd"}'
        self.assertGreater(metric(text, m % "sum") / metric(text, m % "count"),
                           2.0, "32 streams should make batches well above 1")

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

    def score_from_64_callers(self, *flags):
        """64 grpcio threads calling Score on a dual encoder (a through
        enc0, b through enc1, then the comparator) with one batch worker;
        returns the status codes, the scores and the metrics."""
        dual = os.path.join(harness.GOLDEN, "torch", "dual_o2v")
        server = harness.Server([dual], "--num_batch_workers=1", *flags)
        codes, scores = [], []
        lock = threading.Lock()
        text = " ".join("w%d" % (k % 50) for k in range(60))

        def caller():
            for _ in range(8):
                req = embedder_pb2.ScoreRequest(
                    pairs=[embedder_pb2.Pair(a=text, b=text)], truncate=True)
                try:
                    resp = server.stub.Score(req, timeout=30)
                    with lock:
                        codes.append("OK")
                        scores.append(round(resp.scores[0], 5))
                except grpc.RpcError as e:
                    with lock:
                        codes.append(e.code().name)
        try:
            threads = [threading.Thread(target=caller) for _ in range(64)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            text = self.scrape(server)
            # The server still answers.
            after = server.stub.Score(embedder_pb2.ScoreRequest(
                pairs=[embedder_pb2.Pair(a="w1 w2", b="w3")]), timeout=30)
            self.assertEqual(len(after.scores), 1)
        finally:
            server.close()
        return codes, scores, text

    def test_score_is_batched(self):
        codes, scores, text = self.score_from_64_callers()
        self.assertEqual(set(codes), {"OK"})
        self.assertEqual(len(set(scores)), 1, "same pair, same score")
        # One call is one job of one sentence per tower: a batch of more
        # than one held several calls.
        single = metric(text, 'ctxembed_batch_size_bucket{model="dual_o2v",le="1"}')
        total = metric(text, 'ctxembed_batch_size_count{model="dual_o2v"}')
        self.assertGreater(total, single, "no batch held two Score calls")

    def test_score_is_refused_under_overload_like_embed(self):
        # Room for one call's two sentences: 64 callers overflow it. A call
        # ends with its refusal, not with the cancellation of its other job.
        codes, _, text = self.score_from_64_callers("--max_queue_sentences=2")
        self.assertEqual(set(codes) - {"OK", "RESOURCE_EXHAUSTED"}, set())
        self.assertIn("OK", codes)
        self.assertIn("RESOURCE_EXHAUSTED", codes)
        self.assertGreater(metric(
            text, 'ctxembed_rejected_total{model="dual_o2v",reason="overloaded"}'),
            0)

    def test_more_models_start_no_more_threads(self):
        def threads(models):
            server = harness.Server(models, metrics=False)
            try:
                server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["w1"]))
                # Threads that carry the program's name: ours (main, batch
                # workers, the direction helper). gRPC names its own, and
                # starts and stops them as it likes.
                task = "/proc/%d/task" % server.proc.pid
                names = [open(os.path.join(task, t, "comm")).read().strip()
                         for t in os.listdir(task)]
                return names.count("ctxembed-server")
            finally:
                server.close()
        golden = harness.GOLDEN
        one = threads([MODEL])
        three = threads([MODEL, os.path.join(golden, "torch", "lstm_bi_2l_last"),
                         os.path.join(golden, "models", "sg_d8")])
        self.assertEqual(three, one)


if __name__ == "__main__":
    unittest.main()
