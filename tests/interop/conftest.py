"""Interop harness: runs the real `clavis` binary (SQLite and PostgreSQL) and hands tests a
handle to drive it with the real Azure client libraries and the `clavis` CLI.

Every secret and token a test sees is registered with `remember`; at the end of each server's
life its log (captured at TRACE level) is scanned for all of them.
"""

import json
import os
import pathlib
import secrets as pysecrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("CLAVIS_BIN", ROOT / "target" / "debug" / "clavis"))
POSTGRES_URL = os.environ.get("CLAVIS_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")

REMEMBERED: list[str] = []

# Vault hosts ({vault}.vault.localhost) resolve to the loopback address inside this process only
# (glibc does not resolve *.localhost); the Host header, TLS SNI and certificate checks still use
# the vault name, so routing and verification stay real.
_getaddrinfo = socket.getaddrinfo


def _resolve_localhost_names(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _resolve_localhost_names

# aiohttp builds its TLS context once per process, so every server of a run shares one
# development CA: the first server creates it, later ones get it copied into their data dir
# (Clavis keeps an existing CA and issues its server certificate from it).
SHARED_CA: dict[str, pathlib.Path] = {}


def remember(value: str) -> str:
    if value:
        REMEMBERED.append(value)
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_postgres_database() -> tuple[str, str]:
    name = "clavis_interop_" + pysecrets.token_hex(6)
    done = subprocess.run(["psql", POSTGRES_URL, "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {name}"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable or refused CREATE DATABASE: {done.stderr.strip()}. "
                    "The interop suite runs on PostgreSQL too: start it or set CLAVIS_TEST_DATABASE_URL.")
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}", name


class Clavis:
    """A running `clavis serve` and helpers around it."""

    def __init__(self, backend: str):
        self.backend = backend
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"clavis-interop-{backend}-"))
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.log_path = self.dir / "server.log"
        self.pg_name = None
        env = dict(os.environ)
        env.update({
            "RUST_LOG": "trace",
            "CLAVIS_LISTEN": f"127.0.0.1:{self.port}",
            "CLAVIS_DATA_DIR": str(self.dir / "data"),
            "CLAVIS_CREDENTIALS__CLOCK_SKEW_SECONDS": "0",
            "CLAVIS_JOBS__USAGE_FLUSH_INTERVAL_MS": "200",
        })
        if backend == "postgres":
            url, self.pg_name = create_postgres_database()
            env["CLAVIS_DATABASE_URL"] = url
        tls = self.dir / "data" / "tls"
        if SHARED_CA:
            tls.mkdir(parents=True)
            for name, source in SHARED_CA.items():
                shutil.copy(source, tls / name)
        self.env = env
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([str(BINARY), "serve"], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.ca = self.dir / "data" / "tls" / "ca.pem"
        self._wait_ready()
        if not SHARED_CA:
            SHARED_CA.update({"ca.pem": tls / "ca.pem", "ca-key.pem": tls / "ca-key.pem"})
        self.bootstrap = json.loads((self.dir / "data" / "bootstrap.json").read_text())
        remember(self.bootstrap["clientSecret"])
        self.tenant_id = self.bootstrap["tenantId"]
        self.tenant_domain = self.bootstrap["tenantDomain"]
        # Both the synchronous (requests) and asynchronous (aiohttp) clients trust the dev CA.
        os.environ["REQUESTS_CA_BUNDLE"] = str(self.ca)
        os.environ["SSL_CERT_FILE"] = str(self.ca)

    def restart(self):
        """Stops the server gracefully and starts it again on the same data and port."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)
        self.process = subprocess.Popen([str(BINARY), "serve"], stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.time() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"clavis serve exited: {self.log_path.read_text(errors='replace')[-4000:]}")
            try:
                if self.ca.exists() and requests.get(f"{self.url}/readyz", verify=str(self.ca), timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                raise RuntimeError("clavis serve did not become ready in 60 s")
            time.sleep(0.1)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BINARY), *args, "--data-dir", str(self.dir / "data")], capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError(f"clavis {' '.join(args)} failed: {done.stderr}")
        return done

    def cli_json(self, *args: str):
        return json.loads(self.cli(*args, "-o", "json").stdout)

    def create_app(self, name: str, *uris: str) -> dict:
        args = ["app", "create", name]
        for uri in uris:
            args += ["--identifier-uri", uri]
        return self.cli_json(*args)

    def add_secret(self, app: str, *extra: str) -> dict:
        added = self.cli_json("app", "secret", "add", app, *extra)
        remember(added["secretText"])
        return added

    def vault_url(self, name: str) -> str:
        return f"https://{name}.vault.localhost:{self.port}"

    def jwks(self) -> dict:
        return requests.get(f"{self.url}/{self.tenant_id}/discovery/v2.0/keys", verify=str(self.ca), timeout=5).json()

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("clavis serve did not stop within 20 s of SIGTERM")
        self.log.close()
        if self.pg_name:
            subprocess.run(["psql", POSTGRES_URL, "-c", f"DROP DATABASE IF EXISTS {self.pg_name} WITH (FORCE)"], capture_output=True)
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def clavis(request):
    server = Clavis(request.param)
    yield server
    log = server.stop()
    leaked = [value[:6] + "…" for value in REMEMBERED if value and value in log]
    assert not leaked, f"{len(leaked)} secrets or tokens appeared in the server log ({server.log_path})"
    assert "Clavis" in log and "TRACE" in log, "the log was not captured at TRACE level"
