"""Sealed start: without its master key, or with a wrong one, Clavis starts sealed. Health says
so, every operation answers 503 in its protocol's shape with a clear message, nothing is written,
and `clavis unseal` (key on standard input or in a file) opens it without a restart."""
import base64
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import BINARY, POSTGRES_URL, SHARED_CA, create_postgres_database, free_port, remember


def start(env: dict, log: pathlib.Path) -> subprocess.Popen:
    return subprocess.Popen([str(BINARY), "serve"], stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env)


def wait_answering(url: str, ca: pathlib.Path):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            return requests.get(f"{url}/healthz", verify=str(ca), timeout=2).json()
        except (requests.RequestException, ValueError, OSError):
            time.sleep(0.05)
    raise AssertionError("clavis serve did not answer")


def stop(process: subprocess.Popen):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)


def stored_state(data: pathlib.Path, pg_url: str | None) -> str:
    if pg_url:
        tables = ["audit", "applications", "password_credentials", "vault_secret_versions", "wrapped_keys", "signing_keys", "leases", "signins"]
        query = "; ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
        return subprocess.run(["psql", pg_url, "-Atc", query], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256()
    for name in ("clavis.db", "clavis.db-wal"):
        path = data / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sealed_start_serves_nothing_writes_nothing_and_unseals(backend):
    root = pathlib.Path(tempfile.mkdtemp(prefix=f"clavis-sealed-{backend}-"))
    port = free_port()
    url = f"https://localhost:{port}"
    data = root / "data"
    key = remember(base64.b64encode(os.urandom(32)).decode())
    env = dict(os.environ, RUST_LOG="info", CLAVIS_LISTEN=f"127.0.0.1:{port}", CLAVIS_DATA_DIR=str(data))
    pg_url = pg_name = None
    if backend == "postgres":
        pg_url, pg_name = create_postgres_database()
        env["CLAVIS_DATABASE_URL"] = pg_url
    if SHARED_CA:
        (data / "tls").mkdir(parents=True)
        for name, source in SHARED_CA.items():
            (data / "tls" / name).write_bytes(pathlib.Path(source).read_bytes())
    ca = data / "tls" / "ca.pem"
    log = root / "serve.log"
    try:
        # An instance with a client secret and a vault value, its key given by the environment.
        process = start(dict(env, CLAVIS_MASTER_KEY=key), log)
        wait_answering(url, ca)
        bootstrap = json.loads((data / "bootstrap.json").read_text())
        remember(bootstrap["clientSecret"])
        tenant = bootstrap["tenantId"]
        subprocess.run([str(BINARY), "vault", "create", "sealedkv", "--data-dir", str(data)], check=True, capture_output=True)
        subprocess.run([str(BINARY), "secret", "set", "kept", "--vault", "sealedkv", "--data-dir", str(data)],
                       input=remember("sealed-value-" + key[:6]), text=True, check=True, capture_output=True)
        stop(process)

        token_form = {"grant_type": "client_credentials", "client_id": bootstrap["clientId"], "client_secret": bootstrap["clientSecret"],
                      "scope": "api://clavis/.default"}
        for given, why in ((None, "no master key"), (base64.b64encode(os.urandom(32)).decode(), "a wrong master key")):
            before = stored_state(data, pg_url)
            process = start(dict(env, CLAVIS_MASTER_KEY=given) if given else env, log)
            health = wait_answering(url, ca)
            assert health["sealed"] is True and health["status"] == "sealed", (why, health)
            assert requests.get(f"{url}/readyz", verify=str(ca), timeout=5).status_code == 503
            token = requests.post(f"{url}/{tenant}/oauth2/v2.0/token", data=token_form, verify=str(ca), timeout=5)
            assert token.status_code == 503 and token.headers["retry-after"]
            assert token.json()["error"] == "temporarily_unavailable" and "sealed" in token.json()["error_description"]
            api = requests.get(f"{url}/v1.0/applications", verify=str(ca), timeout=5, headers={"Authorization": "Bearer x"})
            assert api.status_code == 503 and api.json()["error"]["code"] == "Sealed", api.text
            assert "clavis unseal" in api.json()["error"]["message"]
            vault = requests.get(f"https://sealedkv.vault.localhost:{port}/secrets/kept?api-version=7.6", verify=str(ca), timeout=5)
            assert vault.status_code == 503
            portal = requests.get(f"{url}/portal", verify=str(ca), timeout=5, allow_redirects=False)
            assert portal.status_code == 503
            # A key that is not the instance's is refused; the instance stays sealed.
            wrong = subprocess.run([str(BINARY), "unseal", "--data-dir", str(data)], input=base64.b64encode(os.urandom(32)).decode(),
                                   text=True, capture_output=True)
            assert wrong.returncode != 0 and "not this instance's master key" in wrong.stderr, wrong.stderr
            assert requests.get(f"{url}/readyz", verify=str(ca), timeout=5).status_code == 503
            assert stored_state(data, pg_url) == before, f"a sealed instance ({why}) wrote to its store"
            # The right key, from standard input, opens it without a restart.
            opened = subprocess.run([str(BINARY), "unseal", "--data-dir", str(data)], input=key + "\n", text=True, capture_output=True)
            assert opened.returncode == 0, opened.stderr
            assert requests.get(f"{url}/readyz", verify=str(ca), timeout=5).status_code == 200
            answer = requests.post(f"{url}/{tenant}/oauth2/v2.0/token", data=token_form, verify=str(ca), timeout=5)
            assert answer.status_code == 200, answer.text
            value = subprocess.run([str(BINARY), "secret", "get", "kept", "--vault", "sealedkv", "--data-dir", str(data)],
                                   capture_output=True, text=True, check=True).stdout.strip()
            assert value == "sealed-value-" + key[:6]
            again = subprocess.run([str(BINARY), "unseal", "--data-dir", str(data)], input=key, text=True, capture_output=True)
            assert again.returncode != 0 and "not sealed" in again.stderr
            stop(process)
        server_log = log.read_text(errors="replace")
        assert key not in server_log, "the master key reached the log"
    finally:
        if pg_name:
            subprocess.run(["psql", POSTGRES_URL, "-c", f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)"], capture_output=True)
