"""Model versions swapped (and one broken version published) while 64
callers embed: no failed call, and every
answer's vector is the one of the version its model_version names; a broken
version is refused while the old one keeps serving; SIGHUP rescans."""
import collections
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest
import urllib.request

import harness
from harness import embedder_pb2, embedder_pb2_grpc, grpc

MODELS = os.path.join(harness.GOLDEN, "models")
SENTENCE = "The Cat sat on the mat"


def copy_model(src, dst, name, lowercase=None):
    """Copies golden model `src` to `dst` (written beside it and renamed in,
    the way a version is published), naming the model `name`."""
    staging = dst + ".partial"
    shutil.copytree(os.path.join(MODELS, src), staging)
    path = os.path.join(staging, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["name"] = name
    if lowercase is not None:
        config["tokenizer"]["lowercase"] = lowercase
    with open(path, "w") as f:
        json.dump(config, f)
    os.rename(staging, dst)


# The variants the versions cycle through: a dimension change (cbow_d12)
# and a tokenizer change (lower-casing) among them.
VARIANTS = [("sg_d8", None), ("cbow_d12", None), ("sg_d8", True),
            ("sg_minn1", None)]


def scrape(server):
    url = "http://127.0.0.1:%d/metrics" % server.metrics_port
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def metric(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


class ReloadTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ctxembed_reload_")
        self.versions = os.path.join(self.dir, "m")
        os.mkdir(self.versions)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.close()
        shutil.rmtree(self.dir)

    def start(self, model_dirs, *flags):
        server = harness.Server(model_dirs, "--model_poll_interval_ms=100",
                                *flags)
        self.servers.append(server)
        return server

    def reference_vectors(self):
        """Each variant's vector of SENTENCE, from a server of its own."""
        dirs = []
        for i, (src, lowercase) in enumerate(VARIANTS):
            d = os.path.join(self.dir, "ref%d" % i)
            copy_model(src, d, "ref%d" % i, lowercase)
            dirs.append(d)
        server = self.start(dirs)
        refs = []
        for i in range(len(VARIANTS)):
            r = server.stub.Embed(embedder_pb2.EmbedRequest(
                inputs=[SENTENCE], model="ref%d" % i))
            refs.append(list(r.embeddings[0].values))
        self.assertEqual(len(refs[1]), 12)
        self.assertNotEqual(refs[0], refs[2])  # lower-casing changes it
        return refs

    def wait_for_version(self, server, version, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            models = server.stub.ListModels(
                embedder_pb2.ListModelsRequest()).models
            if models and models[0].version == version:
                return
            time.sleep(0.02)
        self.fail("version %d not served within %d s" % (version, timeout_s))

    def test_swaps_under_load_fail_no_call(self):
        refs = self.reference_vectors()
        copy_model(VARIANTS[0][0], os.path.join(self.versions, "1"), "m")
        server = self.start([self.versions])
        self.assertIn('loaded model "m" version 1', "".join(server.log))
        stop = threading.Event()
        lock = threading.Lock()
        failures = []
        by_version = collections.Counter()
        request = embedder_pb2.EmbedRequest(inputs=[SENTENCE])

        def caller():
            channel = grpc.insecure_channel("127.0.0.1:%d" % server.grpc_port)
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            for _ in range(100000):  # bounded; ends when the swaps are done
                if stop.is_set():
                    break
                try:
                    r = stub.Embed(request, timeout=30)
                except grpc.RpcError as e:
                    with lock:
                        failures.append("%s: %s" % (e.code(), e.details()))
                    continue
                v = r.model_version
                want = refs[(v - 1) % len(VARIANTS)]
                got = list(r.embeddings[0].values)
                ok = len(got) == len(want) and all(
                    abs(a - b) < 1e-6 for a, b in zip(got, want))
                with lock:
                    by_version[v] += 1
                    if not ok:
                        failures.append("version %d: wrong vector" % v)
            channel.close()

        threads = [threading.Thread(target=caller) for _ in range(64)]
        for t in threads:
            t.start()
        try:
            for v in range(2, 23):  # 20 swaps, and one broken version
                path = os.path.join(self.versions, str(v))
                src, lowercase = VARIANTS[(v - 1) % len(VARIANTS)]
                if v == 12:
                    # Weights cut short, under load: refused, counted, and
                    # version 11 keeps answering; 13 replaces it.
                    staging = path + ".partial"
                    shutil.copytree(os.path.join(MODELS, "sg_d8"), staging)
                    bin_path = os.path.join(staging, "vectors.bin")
                    with open(bin_path, "r+b") as f:
                        f.truncate(os.path.getsize(bin_path) // 2)
                    os.rename(staging, path)
                    deadline = time.monotonic() + 30
                    while metric(scrape(server), 'ctxembed_model_reloads_total'
                                 '{model="m",result="failed"}') < 1:
                        self.assertLess(time.monotonic(), deadline)
                        time.sleep(0.05)
                    continue
                copy_model(src, path, "m", lowercase)
                self.wait_for_version(server, v)
                old = os.path.join(self.versions, str(v - 2))
                if v % 3 == 0 and os.path.isdir(old):  # removed now and then
                    shutil.rmtree(old)
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        self.assertEqual(failures, [])
        # Most versions answered some calls (swaps are 0.1 s apart).
        self.assertGreaterEqual(len(by_version), 15, by_version)
        text = scrape(server)
        self.assertEqual(metric(text, 'ctxembed_model_version{model="m"}'), 22)
        self.assertEqual(metric(
            text, 'ctxembed_model_reloads_total{model="m",result="failed"}'), 1)
        self.assertNotIn(12, by_version)
        self.assertEqual(metric(
            text, 'ctxembed_model_reloads_total{model="m",result="loaded"}'),
            21)
        # Every replaced version is released once its calls are done.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if metric(scrape(server), 'ctxembed_model_reloads_total'
                      '{model="m",result="unloaded"}') == 20:
                break
            time.sleep(0.1)
        self.assertEqual(metric(scrape(server), 'ctxembed_model_reloads_total'
                                '{model="m",result="unloaded"}'), 20)
        self.assertEqual(
            len(re.findall(r'model "m" version \d+ released',
                           self.drain_log(server))), 20)

    def drain_log(self, server):
        code, err = server.stop()
        self.assertEqual(code, 0, err)
        return "".join(server.log)

    def test_broken_versions_are_refused_and_the_old_one_serves(self):
        copy_model("sg_d8", os.path.join(self.versions, "1"), "m")
        server = self.start([self.versions], "--model_poll_interval_ms=0")
        request = embedder_pb2.EmbedRequest(inputs=[SENTENCE])
        before = server.stub.Embed(request)
        # Version 2: weights cut short. Version 3: a config that does not
        # parse. Published, then SIGHUP (polling is off).
        copy_model("sg_d8", os.path.join(self.versions, "2"), "m")
        path = os.path.join(self.versions, "2", "vectors.bin")
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        server.proc.send_signal(signal.SIGHUP)
        failed = 'ctxembed_model_reloads_total{model="m",result="failed"}'
        deadline = time.monotonic() + 30
        while metric(scrape(server), failed) < 1:
            self.assertLess(time.monotonic(), deadline)
            r = server.stub.Embed(request)
            self.assertEqual(r.model_version, 1)
            time.sleep(0.02)
        self.assertEqual(server.stub.Embed(request).embeddings,
                         before.embeddings)
        # The same broken files are not tried again.
        server.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertEqual(metric(scrape(server), failed), 1)
        staging = os.path.join(self.dir, "3")
        shutil.copytree(os.path.join(MODELS, "sg_d8"), staging)
        with open(os.path.join(staging, "config.json"), "w") as f:
            f.write('{"ctxembed_format": 1, "name": "m",')
        os.rename(staging, os.path.join(self.versions, "3"))
        server.proc.send_signal(signal.SIGHUP)
        while metric(scrape(server), failed) < 2:
            self.assertLess(time.monotonic(), deadline)
            self.assertEqual(server.stub.Embed(request).model_version, 1)
            time.sleep(0.02)
        # A good version 4 is picked up.
        copy_model("cbow_d12", os.path.join(self.versions, "4"), "m")
        server.proc.send_signal(signal.SIGHUP)
        self.wait_for_version(server, 4)
        self.assertEqual(len(server.stub.Embed(request).embeddings[0].values),
                         12)
        log = self.drain_log(server)
        self.assertIn("version 2 refused: ", log)
        self.assertIn("vectors.bin", log)
        self.assertIn("version 3 refused: ", log)
        self.assertIn("config.json: invalid JSON", log)

    def test_policy_all_serves_every_version_by_name_at_version(self):
        copy_model("sg_d8", os.path.join(self.versions, "1"), "m")
        copy_model("cbow_d12", os.path.join(self.versions, "2"), "m")
        server = self.start([self.versions], "--model_version_policy=all")
        infos = server.stub.ListModels(embedder_pb2.ListModelsRequest()).models
        self.assertEqual([(i.name, i.version, i.is_default) for i in infos],
                         [("m", 2, True), ("m", 1, False)])
        self.assertEqual(infos[0].state, embedder_pb2.MODEL_STATE_AVAILABLE)
        r1 = server.stub.Embed(embedder_pb2.EmbedRequest(
            inputs=[SENTENCE], model="m@1"))
        r2 = server.stub.Embed(embedder_pb2.EmbedRequest(
            inputs=[SENTENCE], model="m"))
        self.assertEqual((r1.model_version, len(r1.embeddings[0].values)),
                         (1, 8))
        self.assertEqual((r2.model_version, len(r2.embeddings[0].values)),
                         (2, 12))
        with self.assertRaises(grpc.RpcError) as cm:
            server.stub.Embed(embedder_pb2.EmbedRequest(
                inputs=[SENTENCE], model="m@7"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("loaded: m@2, m@1", cm.exception.details())
        # A mismatched name is refused; removing version 1 unloads it.
        # Version 3 is published first: a poll between the two steps must
        # not end the wait before version 3 was seen.
        copy_model("sg_d8", os.path.join(self.versions, "3"), "other")
        shutil.rmtree(os.path.join(self.versions, "1"))
        failed = 'ctxembed_model_reloads_total{model="m",result="failed"}'
        deadline = time.monotonic() + 30
        while len(server.stub.ListModels(
                embedder_pb2.ListModelsRequest()).models) != 1 or \
                metric(scrape(server), failed) < 1:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        log = self.drain_log(server)
        self.assertIn('names the model "other"; the other versions in', log)

    def test_a_removed_model_is_unloaded(self):
        copy_model("sg_d8", os.path.join(self.versions, "1"), "m")
        server = self.start([os.path.join(MODELS, "cbow_d12"), self.versions])
        names = lambda: [(i.name, i.version) for i in server.stub.ListModels(
            embedder_pb2.ListModelsRequest()).models]
        self.assertEqual(names(), [("cbow_d12", 0), ("m", 1)])
        shutil.rmtree(self.versions)
        deadline = time.monotonic() + 30
        while names() != [("cbow_d12", 0)]:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        with self.assertRaises(grpc.RpcError) as cm:
            server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a"], model="m"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(
            len(server.stub.Embed(embedder_pb2.EmbedRequest(
                inputs=["a"])).embeddings[0].values), 12)
        text = scrape(server)
        self.assertEqual(metric(
            text, 'ctxembed_model_reloads_total{model="m",result="unloaded"}'),
            1)
        self.assertNotIn('ctxembed_model_version{model="m"}', text)
        self.assertIn("has no versions left", self.drain_log(server))

    def test_startup_refusals(self):
        code, err = harness.run_server_expecting_failure(
            [self.versions])
        self.assertEqual(code, 1)
        self.assertIn("no numbered version directories", err)
        code, err = harness.run_server_expecting_failure(
            [os.path.join(MODELS, "sg_d8")], "--model_version_policy=newest")
        self.assertEqual(code, 1)
        self.assertIn("--model_version_policy", err)
        # Under "latest" a broken highest version falls back to the next.
        copy_model("sg_d8", os.path.join(self.versions, "1"), "m")
        os.makedirs(os.path.join(self.versions, "2"))
        with open(os.path.join(self.versions, "2", "config.json"), "w") as f:
            f.write("{")
        server = self.start([self.versions])
        r = server.stub.Embed(embedder_pb2.EmbedRequest(inputs=[SENTENCE]))
        self.assertEqual(r.model_version, 1)
        self.assertIn("version 2 refused", "".join(server.log) +
                      self.drain_log(server))


if __name__ == "__main__":
    unittest.main()
