"""Crash safety: `clavis serve` killed with SIGKILL during concurrent writes, 20 times, on SQLite
and on PostgreSQL. After every restart the store opens cleanly, and at the end every write that was
acknowledged (vault secret versions, applications with their client secrets, role grants) is
there and the audit chain verifies.
"""
import base64
import json
import os
import pathlib
import secrets as pysecrets
import signal
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import BINARY, POSTGRES_URL, SHARED_CA, create_postgres_database, free_port, remember

CYCLES = 20
WRITE_SECONDS = 0.6


class Instance:
    """One data directory (and database) served by successive `clavis serve` processes."""

    def __init__(self, backend: str):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"clavis-crash-{backend}-"))
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.env = dict(os.environ, RUST_LOG="info", CLAVIS_LISTEN=f"127.0.0.1:{self.port}", CLAVIS_DATA_DIR=str(self.dir / "data"),
                        CLAVIS_MASTER_KEY=remember(base64.b64encode(os.urandom(32)).decode()))
        self.pg_name = None
        if backend == "postgres":
            url, self.pg_name = create_postgres_database()
            self.env["CLAVIS_DATABASE_URL"] = url
        if SHARED_CA:
            tls = self.dir / "data" / "tls"
            tls.mkdir(parents=True)
            for name, source in SHARED_CA.items():
                (tls / name).write_bytes(pathlib.Path(source).read_bytes())
        self.ca = self.dir / "data" / "tls" / "ca.pem"
        self.process = None
        self.starts = 0

    def start(self):
        log = open(self.dir / f"serve-{self.starts}.log", "wb")
        self.starts += 1
        self.process = subprocess.Popen([str(BINARY), "serve"], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 60
        while True:
            assert self.process.poll() is None, f"clavis serve did not start after a crash: {(self.dir / f'serve-{self.starts - 1}.log').read_text()[-3000:]}"
            try:
                if self.ca.exists() and requests.get(f"{self.url}/readyz", verify=str(self.ca), timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.time() < deadline, "clavis serve did not become ready"
            time.sleep(0.05)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        if self.pg_name:
            subprocess.run(["psql", POSTGRES_URL, "-c", f"DROP DATABASE IF EXISTS {self.pg_name} WITH (FORCE)"], capture_output=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_acknowledged_write_survives_sigkill(backend):
    instance = Instance(backend)
    try:
        instance.start()
        bootstrap = json.loads((instance.dir / "data" / "bootstrap.json").read_text())
        remember(bootstrap["clientSecret"])
        tenant = bootstrap["tenantId"]
        ca = str(instance.ca)

        def token(scope: str) -> str:
            answer = requests.post(f"{instance.url}/{tenant}/oauth2/v2.0/token", verify=ca, timeout=10, data={
                "grant_type": "client_credentials", "client_id": bootstrap["clientId"], "client_secret": bootstrap["clientSecret"], "scope": scope})
            assert answer.status_code == 200, answer.text
            return answer.json()["access_token"]

        def api(session, method, path, body=None, bearer=None):
            return session.request(method, f"{instance.url}{path}", verify=ca, timeout=10, json=body,
                                   headers={"Authorization": f"Bearer {bearer}"})

        admin = token("api://clavis/.default")
        with requests.Session() as s:
            resource = api(s, "POST", "/v1.0/applications", {"displayName": "crash-api", "identifierUris": ["api://crash"]}, admin).json()
            assert api(s, "POST", f"/v1.0/applications/{resource['id']}/appRoles", {"value": "Crash.Write"}, admin).status_code == 201
            assert api(s, "POST", "/v1.0/clavis/vaults", {"name": "crashkv"}, admin).status_code == 201
        vault_scope = f"https://vault.localhost:{instance.port}/.default"
        vault_url = f"https://crashkv.vault.localhost:{instance.port}"

        versions: list[tuple[str, str, str]] = []
        secrets_added: list[tuple[str, str]] = []
        grants: list[tuple[str, str]] = []
        lock = threading.Lock()

        def writer(kind: int, stop: threading.Event, admin: str, vault_token: str):
            session = requests.Session()
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    if kind == 0:
                        name, value = f"k{instance.starts}-{n}-{pysecrets.token_hex(3)}", pysecrets.token_urlsafe(12)
                        put = session.put(f"{vault_url}/secrets/{name}?api-version=7.6", verify=ca, timeout=10, json={"value": value},
                                          headers={"Authorization": f"Bearer {vault_token}"})
                        if put.status_code == 200:
                            with lock:
                                versions.append((name, put.json()["id"].rsplit("/", 1)[1], value))
                    elif kind == 1:
                        app = api(session, "POST", "/v1.0/applications", {"displayName": f"c{instance.starts}-{n}"}, admin)
                        if app.status_code != 201:
                            continue
                        added = api(session, "POST", f"/v1.0/applications/{app.json()['id']}/addPassword", {"passwordCredential": {}}, admin)
                        if added.status_code == 200:
                            with lock:
                                secrets_added.append((app.json()["appId"], remember(added.json()["secretText"])))
                    else:
                        app = api(session, "POST", "/v1.0/applications", {"displayName": f"g{instance.starts}-{n}"}, admin)
                        if app.status_code != 201:
                            continue
                        sp = app.json()["appId"]
                        grant = api(session, "POST", f"/v1.0/servicePrincipals/{resource['appId']}/appRoleAssignedTo",
                                    {"principalId": sp, "resourceId": resource["appId"], "appRoleId": "Crash.Write"}, admin)
                        if grant.status_code == 201:
                            with lock:
                                grants.append((sp, grant.json()["id"]))
                except requests.RequestException:
                    session = requests.Session()  # the server died under this request: not acknowledged

        for cycle in range(CYCLES):
            if cycle:
                instance.start()  # after a SIGKILL: the store must open cleanly
            admin, vault_token = token("api://clavis/.default"), token(vault_scope)
            if cycle == 0:
                with requests.Session() as s:
                    assert api(s, "POST", "/v1.0/clavis/vaultRoleAssignments",
                               {"principalId": bootstrap["clientId"], "role": "Key Vault Secrets Officer", "scope": "/vaults/crashkv"},
                               admin).status_code in (201, 409)
            stop = threading.Event()
            threads = [threading.Thread(target=writer, args=(k % 3, stop, admin, vault_token)) for k in range(6)]
            for t in threads:
                t.start()
            time.sleep(WRITE_SECONDS)
            instance.kill()
            stop.set()
            for t in threads:
                t.join()

        instance.start()
        print(f"\n{backend}: {CYCLES} SIGKILLs survived; {len(versions)} versions, {len(secrets_added)} client secrets and "
              f"{len(grants)} role grants acknowledged, all present")
        assert len(versions) > CYCLES and len(secrets_added) > CYCLES and len(grants) > CYCLES
        vault_token = token(vault_scope)
        with requests.Session() as s:
            for name, version, value in versions:
                got = s.get(f"{vault_url}/secrets/{name}/{version}?api-version=7.6", verify=ca, timeout=10,
                            headers={"Authorization": f"Bearer {vault_token}"})
                assert got.status_code == 200 and got.json()["value"] == value, (name, got.text[:200])
            for client_id, secret in secrets_added:
                answer = s.post(f"{instance.url}/{tenant}/oauth2/v2.0/token", verify=ca, timeout=10, data={
                    "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "api://crash/.default"})
                assert answer.status_code == 200, answer.text
            admin = token("api://clavis/.default")
            listed = api(s, "GET", f"/v1.0/servicePrincipals/{resource['appId']}/appRoleAssignedTo", None, admin).json()["value"]
            held = {a["id"] for a in listed}
            missing = [grant for _, grant in grants if grant not in held]
            assert not missing, f"{len(missing)} acknowledged role grants are missing"
            verified = api(s, "POST", "/v1.0/clavis/auditVerify", None, admin).json()
            assert verified["intact"], verified
    finally:
        instance.stop()
