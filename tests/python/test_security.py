"""TLS, mutual TLS with certificate rotation, API keys and the plaintext
health port, tried with Python grpcio as a client would (certificates made
by the openssl command line for each run)."""
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import harness
from harness import embedder_pb2, embedder_pb2_grpc, grpc, health_pb2
from harness import health_pb2_grpc

SG_D8 = os.path.join(harness.GOLDEN, "models", "sg_d8")


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True)


def make_pki(d):
    """A CA; two server certificates for 127.0.0.1/localhost (for rotation)
    and a client certificate, all signed by it; an unrelated key."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=ctxembed test CA", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "server one"), ("server2", "server two"),
                     ("client", "client one")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + cn, cwd=d)
        ext = ["-extfile", "san.ext"] if name.startswith("server") else []
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-out", name + ".pem", *ext, cwd=d)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", "other.key", cwd=d)


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


def served_certificate(port):
    """The DER certificate a new TLS connection to the port gets."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with ctx.wrap_socket(sock) as tls:
            return tls.getpeercert(binary_form=True)


def der(d, name):
    return ssl.PEM_cert_to_DER_cert(read(d, name).decode())


class TlsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ctxembed_pki_")
        make_pki(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def secure_stub(self, port, client=False):
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(self.dir, "ca.pem"),
            private_key=read(self.dir, "client.key") if client else None,
            certificate_chain=read(self.dir, "client.pem") if client else None)
        channel = grpc.secure_channel("127.0.0.1:%d" % port, creds)
        self.addCleanup(channel.close)
        return embedder_pb2_grpc.EmbedderStub(channel)

    def embed(self, stub, **kw):
        return stub.Embed(embedder_pb2.EmbedRequest(inputs=["the dog"]),
                          timeout=10, **kw)

    def test_tls_and_a_plaintext_client_refused(self):
        server = harness.Server([SG_D8], "--tls_cert_file=" + self.path("server.pem"),
                                "--tls_key_file=" + self.path("server.key"))
        self.addCleanup(server.close)
        self.assertIn(" tls", server.log[-1])
        reply = self.embed(self.secure_stub(server.grpc_port))
        self.assertEqual(len(reply.embeddings[0].values), 8)
        with self.assertRaises(grpc.RpcError) as cm:
            self.embed(server.stub)  # harness's plaintext channel
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_mutual_tls_needs_a_client_certificate(self):
        server = harness.Server([SG_D8], "--tls_cert_file=" + self.path("server.pem"),
                                "--tls_key_file=" + self.path("server.key"),
                                "--tls_client_ca_file=" + self.path("ca.pem"))
        self.addCleanup(server.close)
        self.assertIn(" mtls", server.log[-1])
        with self.assertRaises(grpc.RpcError) as cm:
            self.embed(self.secure_stub(server.grpc_port))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        reply = self.embed(self.secure_stub(server.grpc_port, client=True))
        self.assertEqual(len(reply.embeddings[0].values), 8)

    def test_allowed_subjects(self):
        base = ["--tls_cert_file=" + self.path("server.pem"),
                "--tls_key_file=" + self.path("server.key"),
                "--tls_client_ca_file=" + self.path("ca.pem")]
        for allowed, ok in (("CN=client one", True), ("x;client one", True),
                            ("CN=client two;server one", False)):
            with self.subTest(allowed=allowed):
                server = harness.Server([SG_D8], *base,
                                        "--tls_allowed_subjects=" + allowed)
                self.addCleanup(server.close)
                stub = self.secure_stub(server.grpc_port, client=True)
                if ok:
                    self.assertEqual(len(self.embed(stub).embeddings), 1)
                    continue
                with self.assertRaises(grpc.RpcError) as cm:
                    self.embed(stub)
                self.assertEqual(cm.exception.code(),
                                 grpc.StatusCode.PERMISSION_DENIED)
                self.assertIn('subject "CN=client one" is not in '
                              '--tls_allowed_subjects', cm.exception.details())
        code, err = harness.run_server_expecting_failure(
            [SG_D8], "--tls_allowed_subjects=CN=x")
        self.assertEqual(code, 1)
        self.assertIn("--tls_allowed_subjects needs --tls_client_ca_file", err)

    def test_rotation_under_load_loses_no_call(self):
        work = tempfile.mkdtemp(prefix="ctxembed_rot_", dir=self.dir)
        for name in ("server.pem", "server.key"):
            shutil.copy(self.path(name), os.path.join(work, name))
        server = harness.Server([SG_D8], "--tls_cert_file=" + os.path.join(work, "server.pem"),
                                "--tls_key_file=" + os.path.join(work, "server.key"),
                                "--tls_refresh_interval_s=1")
        self.addCleanup(server.close)
        self.assertEqual(served_certificate(server.grpc_port), der(self.dir, "server.pem"))
        stop, calls, failures = threading.Event(), [0], []

        def load():
            stub = self.secure_stub(server.grpc_port)  # one connection, kept
            while not stop.is_set():
                try:
                    self.embed(stub)
                    calls[0] += 1
                except grpc.RpcError as e:
                    failures.append(e.code())
                # and a new connection now and then
                if calls[0] % 20 == 0:
                    try:
                        self.embed(self.secure_stub(server.grpc_port))
                    except grpc.RpcError as e:
                        failures.append(e.code())
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        # As cert-manager does: new files in place (written aside, renamed).
        for name in ("server.key", "server.pem"):
            shutil.copy(self.path(name.replace("server", "server2")),
                        os.path.join(work, name + ".new"))
            os.replace(os.path.join(work, name + ".new"), os.path.join(work, name))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if served_certificate(server.grpc_port) == der(self.dir, "server2.pem"):
                break
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(served_certificate(server.grpc_port), der(self.dir, "server2.pem"))
        self.assertEqual(failures, [])
        self.assertGreater(calls[0], 20)

    def test_health_port_is_plaintext_and_health_only(self):
        server = harness.Server([SG_D8], "--tls_cert_file=" + self.path("server.pem"),
                                "--tls_key_file=" + self.path("server.key"),
                                "--health_address=127.0.0.1:0")
        self.addCleanup(server.close)
        self.assertGreater(server.health_port, 0)
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.health_port)
        self.addCleanup(channel.close)
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "ctxembed.v1.Embedder"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service),
                                 timeout=10)
            self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING)
        with self.assertRaises(grpc.RpcError) as cm:
            self.embed(embedder_pb2_grpc.EmbedderStub(channel))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        code, err = server.stop()
        self.assertEqual(code, 0, err)

    def test_bad_files_stop_the_server_with_one_line(self):
        cases = [
            (["--tls_cert_file=" + self.path("missing.pem"),
              "--tls_key_file=" + self.path("server.key")],
             "--tls_cert_file=%s: cannot read: No such file" % self.path("missing.pem")),
            (["--tls_cert_file=" + self.path("server.key"),
              "--tls_key_file=" + self.path("server.key")],
             "no PEM certificate in it"),
            (["--tls_cert_file=" + self.path("server.pem"),
              "--tls_key_file=" + self.path("server.pem")],
             "no PEM private key in it"),
            (["--tls_cert_file=" + self.path("server.pem"),
              "--tls_key_file=" + self.path("other.key")],
             "--tls_key_file=%s does not match the certificate in "
             "--tls_cert_file=%s" % (self.path("other.key"), self.path("server.pem"))),
            (["--tls_cert_file=" + self.path("server.pem")],
             "--tls_cert_file needs --tls_key_file"),
            (["--tls_client_ca_file=" + self.path("ca.pem")],
             "need --tls_cert_file"),
        ]
        for flags, message in cases:
            with self.subTest(flags=flags):
                code, err = harness.run_server_expecting_failure([SG_D8], *flags)
                self.assertEqual(code, 1, err)
                self.assertIn(message, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)


class ApiKeyTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ctxembed_keys_")
        self.addCleanup(shutil.rmtree, self.dir)
        self.keys = os.path.join(self.dir, "keys")
        with open(self.keys, "w") as f:
            f.write("# plain and hashed keys\nplain-key-1\n\nsha256:%s\n"
                    % hashlib.sha256(b"hashed-key-2").hexdigest())
        self.server = harness.Server([SG_D8], "--api_keys_file=" + self.keys)
        self.addCleanup(self.server.close)

    def embed(self, key=None, header=None):
        md = [("authorization", header or "Bearer " + key)] if (key or header) else None
        return self.server.stub.Embed(embedder_pb2.EmbedRequest(inputs=["a dog"]),
                                      metadata=md, timeout=10)

    def refused(self, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            self.embed(**kw)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        return cm.exception.details()

    def scrape(self):
        url = "http://127.0.0.1:%d/metrics" % self.server.metrics_port
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    def test_keys_are_required_and_checked(self):
        self.assertIn("missing API key", self.refused())
        details = self.refused(key="wrong-key-xyz")
        self.assertIn("not valid", details)
        self.assertNotIn("wrong-key-xyz", details)
        self.assertIn('"Bearer <key>"', self.refused(header="Basic abc"))
        self.assertEqual(len(self.embed(key="plain-key-1").embeddings), 1)
        self.assertEqual(len(self.embed(key="hashed-key-2").embeddings), 1)
        # Every method, the stream included.
        md = [("authorization", "Bearer nope")]
        for call in (lambda m: self.server.stub.ListModels(
                         embedder_pb2.ListModelsRequest(), metadata=m, timeout=10),
                     lambda m: self.server.stub.Score(embedder_pb2.ScoreRequest(
                         pairs=[embedder_pb2.Pair(a="a", b="b")]), metadata=m, timeout=10),
                     lambda m: list(self.server.stub.EmbedStream(
                         iter([embedder_pb2.EmbedRequest(inputs=["a"])]),
                         metadata=m, timeout=10))):
            with self.assertRaises(grpc.RpcError) as cm:
                call(md)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            call([("authorization", "Bearer plain-key-1")])
        # Health needs no key.
        reply = self.server.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING)
        text = self.scrape()
        self.assertIn('ctxembed_rejected_total{model="",reason="unauthenticated"} 6',
                      text)

    def test_the_file_is_reread_when_it_changes(self):
        self.assertEqual(len(self.embed(key="plain-key-1").embeddings), 1)
        with open(self.keys + ".new", "w") as f:
            f.write("rotated-key-3\n")
        os.replace(self.keys + ".new", self.keys)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.embed(key="rotated-key-3")
                break
            except grpc.RpcError:
                time.sleep(0.2)
        self.assertEqual(len(self.embed(key="rotated-key-3").embeddings), 1)
        self.refused(key="plain-key-1")
        # A broken file keeps the keys in force.
        with open(self.keys + ".new", "w") as f:
            f.write("sha256:nothex\n")
        os.replace(self.keys + ".new", self.keys)
        time.sleep(1.5)
        self.assertEqual(len(self.embed(key="rotated-key-3").embeddings), 1)

    def test_bad_key_files_stop_the_server(self):
        empty = os.path.join(self.dir, "empty")
        with open(empty, "w") as f:
            f.write("# nothing\n")
        for path, message in ((empty, "no API key in the file"),
                              (os.path.join(self.dir, "none"), "cannot read")):
            code, err = harness.run_server_expecting_failure(
                [SG_D8], "--api_keys_file=" + path)
            self.assertEqual(code, 1, err)
            self.assertIn("--api_keys_file: ", err)
            self.assertIn(message, err)


if __name__ == "__main__":
    unittest.main()
