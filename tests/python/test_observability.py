"""The dashboard and the rules against a real Prometheus (Debian package
`prometheus`, loopback only) scraping a real server under load: every PromQL
expression of deploy/grafana and deploy/prometheus/rules.yml must return
data. For alerting rules the expression's left-hand side is queried (the
part before the threshold): a healthy server does not fire them."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import harness
from harness import embedder_pb2, grpc

DEPLOY = os.path.join(harness.SOURCE_DIR, "deploy")
MODEL = os.path.join(harness.GOLDEN, "torch", "bigru_2l_odd")
LOADGEN = os.path.join(harness.BUILD_DIR, "bench", "loadgen")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def expressions():
    import yaml
    exprs = []
    with open(os.path.join(DEPLOY, "grafana", "ctxembed-dashboard.json")) as f:
        for panel in json.load(f)["panels"]:
            exprs += [("dashboard: " + panel["title"], t["expr"])
                      for t in panel["targets"]]
    with open(os.path.join(DEPLOY, "prometheus", "rules.yml")) as f:
        for group in yaml.safe_load(f)["groups"]:
            for rule in group["rules"]:
                expr = rule["expr"].strip()
                if "alert" in rule:
                    expr = re.split(r"\s(?:>|<|>=|<=|==|!=)\s", expr)[0]
                    exprs.append(("alert " + rule["alert"], expr))
                else:
                    exprs.append(("rule " + rule["record"], expr))
                    exprs.append(("recorded " + rule["record"], rule["record"]))
    return exprs


class ObservabilityTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ctxembed_prom_")
        self.server = harness.Server([MODEL], "--max_queue_sentences=32",
                                     "--num_batch_workers=1")
        self.prom_port = free_port()
        config = os.path.join(self.tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: ctxembed\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                    % (os.path.join(DEPLOY, "prometheus", "rules.yml"),
                       self.server.metrics_port))
        self.prom = subprocess.Popen(
            ["prometheus", "--config.file=" + config,
             "--storage.tsdb.path=" + os.path.join(self.tmp, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.prom_port],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def tearDown(self):
        self.prom.terminate()
        self.prom.wait(timeout=30)
        self.server.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.prom_port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        return get_json(url)

    def wait_for_target(self, timeout_s=60):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            try:
                targets = self.api("targets")["data"]["activeTargets"]
                if targets and all(t["health"] == "up" for t in targets):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.fail("Prometheus never scraped the server")

    def drive_traffic(self):
        sentences = os.path.join(self.tmp, "sentences.txt")
        with open(sentences, "w") as f:
            for i in range(200):
                f.write(" ".join("w%d" % ((i + k) % 60) for k in range(4 + i % 20)) + "\n")
        for flags in (["--mode=closed", "--concurrency=32", "--duration_s=3"],
                      ["--mode=open", "--rate=8000", "--duration_s=2",
                       "--max_per_request=4"]):
            r = subprocess.run([LOADGEN, "--target=127.0.0.1:%d" % self.server.grpc_port,
                                "--sentences=" + sentences, "--warmup_s=0"] + flags,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
        with self.assertRaises(grpc.RpcError):
            self.server.stub.Embed(embedder_pb2.EmbedRequest())
        self.server.stub.EmbedTokens(embedder_pb2.EmbedRequest(inputs=["w1 w2"]))

    def test_every_dashboard_and_rule_expression_returns_data(self):
        self.wait_for_target()
        self.drive_traffic()
        time.sleep(4)  # a few scrapes and rule evaluations after the load
        empty = []
        for name, expr in expressions():
            r = self.api("query", query=expr)
            self.assertEqual(r["status"], "success", "%s: %s" % (name, expr))
            if not r["data"]["result"]:
                empty.append("%s: %s" % (name, expr))
        self.assertEqual(empty, [], "expressions without data")


if __name__ == "__main__":
    unittest.main()
