"""Test harness: runs the real ctxembed-server binary on loopback and gives
Python grpcio stubs generated from the .proto files (a client ctxembed did
not write). Stubs are generated with Debian's protoc and grpc_python_plugin.

Environment: CTXEMBED_SOURCE_DIR (repository), CTXEMBED_BUILD_DIR (build
tree with server/ctxembed-server and tools/ctxembed-cli).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SOURCE_DIR = os.environ.get(
    "CTXEMBED_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("CTXEMBED_BUILD_DIR",
                           os.path.join(SOURCE_DIR, "build"))
SERVER = os.path.join(BUILD_DIR, "server", "ctxembed-server")
CLI = os.path.join(BUILD_DIR, "tools", "ctxembed-cli")
GOLDEN = os.path.join(SOURCE_DIR, "tests", "golden")
SHARED = os.environ.get("CTXEMBED_SHARED_DIR",
                        os.path.join(SOURCE_DIR, "..", "shared"))

_GEN_DIR = tempfile.mkdtemp(prefix="ctxembed_pystubs_")


def _generate_stubs():
    # The standard protos are copied under other directory names: generated
    # at their own paths they would be modules "grpc.health.v1", which the
    # installed grpc package shadows. Their proto package names (what goes on
    # the wire) are unchanged.
    protos = [(os.path.join(SOURCE_DIR, "proto", "ctxembed", "v1",
                            "embedder.proto"), "ctxembed/v1/embedder.proto"),
              ("/usr/share/grpc-proto/grpc/health/v1/health.proto",
               "std_health/health.proto"),
              ("/usr/share/grpc-proto/grpc/reflection/v1alpha/reflection.proto",
               "std_reflection/reflection.proto")]
    src = os.path.join(_GEN_DIR, "src")
    for path, rel in protos:
        os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
        shutil.copy(path, os.path.join(src, rel))
        subprocess.run(
            ["protoc", "-I", src, "--python_out", _GEN_DIR,
             "--grpc_out", _GEN_DIR,
             "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", rel],
            check=True)
    sys.path.insert(0, _GEN_DIR)


_generate_stubs()

import grpc  # noqa: E402
from ctxembed.v1 import embedder_pb2, embedder_pb2_grpc  # noqa: E402,F401
from std_health import health_pb2, health_pb2_grpc  # noqa: E402,F401
from std_reflection import reflection_pb2, reflection_pb2_grpc  # noqa: E402,F401


class Server:
    """ctxembed-server on 127.0.0.1 with free ports; stops on close()."""

    def __init__(self, model_dirs, *extra_flags, metrics=True, wait=True,
                 env=None):
        """`model_dirs` may be empty when `env` sets CTXEMBED_MODEL_DIR."""
        args = [SERVER, "--grpc_address=127.0.0.1:0",
                "--metrics_address=" + ("127.0.0.1:0" if metrics else ""),
                "--http_address=127.0.0.1:0"]
        if model_dirs:
            args.append("--model_dir=" + ",".join(model_dirs))
        self.proc = subprocess.Popen(args + list(extra_flags), env=env,
                                     stderr=subprocess.PIPE, text=True)
        self.log = []
        self.grpc_port = self.metrics_port = None
        if wait:
            self._wait_ready()
            self.channel = grpc.insecure_channel(
                "127.0.0.1:%d" % self.grpc_port)
            self.stub = embedder_pb2_grpc.EmbedderStub(self.channel)
            self.health = health_pb2_grpc.HealthStub(self.channel)

    def _wait_ready(self, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("server exited early:\n" + "".join(self.log))
            self.log.append(line)
            m = re.search(r"ready: grpc_port=(\d+) metrics_port=(\d+)"
                          r"(?: health_port=(\d+))?(?: http_port=(\d+))?",
                          line)
            if m:
                self.grpc_port, self.metrics_port = int(m[1]), int(m[2])
                self.health_port = int(m[3] or 0)
                self.http_port = int(m[4] or 0)
                return
        raise RuntimeError("server not ready in time:\n" + "".join(self.log))

    def stop(self, sig=signal.SIGTERM, timeout_s=30):
        """Sends `sig`, waits, returns (exit code, rest of stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout_s)
        self.log.append(err)
        return self.proc.returncode, err

    def close(self):
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.stop()


def cpu_levels():
    """The kernel levels (--cpu_isa) this CPU supports, lowest first, read
    from /proc/cpuinfo's flags (independently of the binary's own CPUID
    check); ["generic"] off x86-64."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next(l for l in f if l.startswith("flags")).split(":")[1].split())
    except (OSError, StopIteration):
        return ["generic"]
    need = {"v2": {"sse4_2", "ssse3", "popcnt", "pni"},
            "v3": {"avx", "avx2", "fma", "bmi1", "bmi2"},
            "v4": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}}
    levels, have = [], set()
    for level in ("v2", "v3", "v4"):
        have |= need[level]
        if have <= flags:
            levels.append(level)
    return levels or ["generic"]


def run_server_expecting_failure(model_dirs, *extra_flags, timeout_s=30):
    """Runs the server, expects it to exit by itself; returns (code, stderr)."""
    args = [SERVER, "--model_dir=" + ",".join(model_dirs),
            "--grpc_address=127.0.0.1:0", "--metrics_address=",
            "--http_address="]
    p = subprocess.run(args + list(extra_flags), capture_output=True,
                       text=True, timeout=timeout_s)
    return p.returncode, p.stderr


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def parse_printed_vectors(text):
    """fastText CLI output lines -> list of lists of printed numbers."""
    return [line.split() for line in text.splitlines()]


def printed(values):
    """Formats floats as fastText prints them (std::setprecision(5))."""
    return ["%.5g" % v for v in values]
