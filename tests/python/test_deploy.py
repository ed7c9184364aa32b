"""deploy/ checked offline: the runtime image's package list against ldd of
the built binaries, every Kubernetes object against its schema, the
manifests against the server's real flags, and the Prometheus files with
promtool."""
import json
import os
import re
import shutil
import subprocess
import unittest

import harness

DEPLOY = os.path.join(harness.SOURCE_DIR, "deploy")


def run(args, cwd=None):
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def load_yaml_docs(path):
    import yaml  # python3-yaml comes with yamllint
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


class DeployFilesTest(unittest.TestCase):

    def test_runtime_packages_cover_ldd_and_dockerfile_paths(self):
        r = run([os.path.join(harness.SOURCE_DIR, "tests", "deploy",
                              "check_runtime_packages.sh"),
                 harness.SOURCE_DIR, harness.BUILD_DIR])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_dockerfile_copies_every_source_directory_it_builds(self):
        with open(os.path.join(harness.SOURCE_DIR, "CMakeLists.txt")) as f:
            subdirs = set(re.findall(r"add_subdirectory\((\w+)\)", f.read()))
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            copied = set(re.findall(r"^COPY (\w+) \1$", f.read(), re.M))
        # The image builds with tests and benchmarks off.
        self.assertEqual(subdirs - {"tests", "bench"} - copied, set())

    def test_network_policy_names_the_containers_ports(self):
        base = os.path.join(DEPLOY, "k8s", "base")
        deployment = load_yaml_docs(os.path.join(base, "deployment.yaml"))[0]
        policy = load_yaml_docs(os.path.join(base, "networkpolicy.yaml"))[0]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"] for p in container["ports"]}
        self.assertEqual(policy["spec"]["podSelector"]["matchLabels"],
                         deployment["spec"]["selector"]["matchLabels"])
        allowed = [p["port"] for rule in policy["spec"]["ingress"]
                   for p in rule["ports"]]
        self.assertEqual(sorted(allowed), sorted(ports))  # grpc, http, metrics
        with open(os.path.join(base, "kustomization.yaml")) as f:
            self.assertIn("networkpolicy.yaml", f.read())

    def test_tls_overlay_is_consistent_with_the_base_and_the_flags(self):
        with open(os.path.join(harness.SOURCE_DIR, "server", "main.cc")) as f:
            flags = set(re.findall(r"ABSL_FLAG\([^,]+,\s*(\w+),", f.read()))
        tls = os.path.join(DEPLOY, "k8s", "overlays", "tls")
        base = load_yaml_docs(os.path.join(DEPLOY, "k8s", "base",
                                           "deployment.yaml"))[0]
        patch = load_yaml_docs(os.path.join(tls, "deployment-patch.yaml"))[0]
        cert = load_yaml_docs(os.path.join(tls, "certificate.yaml"))[0]
        container = patch["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"]
               for e in base["spec"]["template"]["spec"]["containers"][0]["env"]
               + container["env"]}
        for name in env:
            self.assertIn(name[len("CTXEMBED_"):].lower(), flags, name)
        health_port = int(env["CTXEMBED_HEALTH_ADDRESS"].rsplit(":", 1)[1])
        self.assertIn({"name": "health", "containerPort": health_port,
                       "protocol": "TCP"}, container["ports"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(container[probe]["grpc"]["port"], health_port)
        volumes = {v["name"]: v for v in patch["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        self.assertEqual(set(mounts), set(volumes))
        self.assertEqual(volumes["tls"]["secret"]["secretName"],
                         cert["spec"]["secretName"])
        # cert-manager's Secret keys, under the mount the flags name.
        self.assertEqual(env["CTXEMBED_TLS_CERT_FILE"], mounts["tls"] + "/tls.crt")
        self.assertEqual(env["CTXEMBED_TLS_KEY_FILE"], mounts["tls"] + "/tls.key")
        self.assertTrue(env["CTXEMBED_API_KEYS_FILE"].startswith(
            mounts["api-keys"] + "/"))

    def test_yamllint(self):
        r = run(["yamllint", "-c", os.path.join(DEPLOY, ".yamllint"),
                 os.path.join(DEPLOY, "k8s"), os.path.join(DEPLOY, "prometheus")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_kubernetes_schemas(self):
        validate = os.path.join(DEPLOY, "validate")
        if not os.path.isdir(os.path.join(validate, "node_modules")):
            r = run(["npm", "ci", "--no-audit", "--no-fund"], cwd=validate)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(["node", "validate.mjs", os.path.join(DEPLOY, "k8s")],
                cwd=validate)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("all objects valid", r.stdout)

    def test_manifests_match_the_server_flags(self):
        with open(os.path.join(harness.SOURCE_DIR, "server", "main.cc")) as f:
            flags = set(re.findall(r"ABSL_FLAG\([^,]+,\s*(\w+),", f.read()))
        deployment = load_yaml_docs(os.path.join(DEPLOY, "k8s", "base",
                                                 "deployment.yaml"))[0]
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        for name in env:
            self.assertTrue(name.startswith("CTXEMBED_"), name)
            self.assertIn(name[len("CTXEMBED_"):].lower(), flags, name)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        self.assertEqual(int(env["CTXEMBED_GRPC_ADDRESS"].rsplit(":", 1)[1]),
                         ports["grpc"])
        self.assertEqual(int(env["CTXEMBED_METRICS_ADDRESS"].rsplit(":", 1)[1]),
                         ports["metrics"])
        self.assertEqual(int(env["CTXEMBED_HTTP_ADDRESS"].rsplit(":", 1)[1]),
                         ports["http"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(container[probe]["grpc"]["port"], ports["grpc"])
        self.assertEqual(container["readinessProbe"]["grpc"]["service"],
                         "ctxembed.v1.Embedder")
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        drain_s = (int(env["CTXEMBED_LAME_DUCK_MS"]) +
                   int(env["CTXEMBED_DRAIN_TIMEOUT_MS"])) / 1000
        self.assertGreaterEqual(spec["terminationGracePeriodSeconds"],
                                pre_stop + drain_s)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(int(annotations["prometheus.io/port"]), ports["metrics"])
        sc = container["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertTrue(spec["securityContext"]["runAsNonRoot"])

    def test_environment_variables_set_flags(self):
        env = dict(os.environ,
                   CTXEMBED_MODEL_DIR=os.path.join(harness.GOLDEN, "models", "sg_d8"),
                   CTXEMBED_MAX_INPUTS_PER_REQUEST="3")
        server = harness.Server([], env=env, metrics=False)
        try:
            with self.assertRaises(harness.grpc.RpcError) as cm:
                server.stub.Embed(harness.embedder_pb2.EmbedRequest(
                    inputs=["a"] * 4))
            self.assertIn("max_inputs_per_request is 3", cm.exception.details())
        finally:
            server.close()
        bad = dict(os.environ, CTXEMBED_MAX_BATCH_SENTENCES="many")
        r = subprocess.run([harness.SERVER], env=bad, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("CTXEMBED_MAX_BATCH_SENTENCES=many", r.stderr)

    def test_promtool(self):
        prom = os.path.join(DEPLOY, "prometheus")
        for args in (["check", "rules", "rules.yml"],
                     ["test", "rules", "rules_test.yml"],
                     ["check", "config", "prometheus.yml"]):
            r = run(["promtool"] + args, cwd=prom)
            self.assertEqual(r.returncode, 0, " ".join(args) + r.stdout + r.stderr)

    def test_grafana_dashboard_is_valid_json_with_queries(self):
        with open(os.path.join(DEPLOY, "grafana", "ctxembed-dashboard.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertGreaterEqual(len(exprs), 10)
        for name in ("ctxembed_requests_total", "ctxembed:request_duration_seconds:p99",
                     "ctxembed:queue_duration_seconds:p99", "ctxembed:batch_size:mean",
                     "ctxembed_padding_ratio", "ctxembed_queue_depth",
                     "ctxembed_inflight_requests", "ctxembed_rejected_total",
                     "ctxembed_model_info"):
            self.assertTrue(any(name in e for e in exprs), name)


if __name__ == "__main__":
    unittest.main()
