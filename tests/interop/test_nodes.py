"""Three `clavis serve` processes on one PostgreSQL behave as one Clavis under load and node loss.

Three nodes share a database, a master key and a public URL (the address a load balancer would
have). Client threads spread token requests and vault writes over all three; one node is killed
with SIGKILL mid-run. Then: no request to a surviving node failed, every token issued by any node
verifies with the JWKS of every surviving node, every acknowledged write is readable, the
instance-wide jobs ran on one node at a time (and kept running after the kill), and a revocation
made on one node is enforced by another within the refresh bound.
"""
import base64
import json
import os
import pathlib
import re
import secrets as pysecrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import jwt
import pytest
import requests

from conftest import BINARY, POSTGRES_URL, SHARED_CA, create_postgres_database, free_port, remember

LOAD_SECONDS = 12
KILL_AFTER = 4
JOB_INTERVAL = 1  # jobs.key_rotation_interval_seconds: the maintenance lease lasts 3 of them
REFRESH_MS = 200


class Node:
    def __init__(self, name: str, root: pathlib.Path, env: dict, ca_from: pathlib.Path | None, port: int | None = None):
        self.name = name
        self.port = port or free_port()
        self.data = root / name
        self.log_path = root / f"{name}.log"
        tls = self.data / "tls"
        if ca_from:
            tls.mkdir(parents=True)
            for file in ("ca.pem", "ca-key.pem"):
                shutil.copy(ca_from / file, tls / file)
        env = dict(env, CLAVIS_LISTEN=f"127.0.0.1:{self.port}", CLAVIS_DATA_DIR=str(self.data))
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([str(BINARY), "serve"], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.url = f"https://localhost:{self.port}"
        self.alive = True

    def wait_ready(self, ca: pathlib.Path):
        deadline = time.time() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                if ca.exists() and requests.get(f"{self.url}/readyz", verify=str(ca), timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.time() < deadline, f"{self.name} did not become ready"
            time.sleep(0.1)

    def metric(self, ca: pathlib.Path, pattern: str) -> float:
        text = requests.get(f"{self.url}/metrics", verify=str(ca), timeout=5).text
        return sum(float(m.group(1)) for m in re.finditer(pattern + r" (\d+(?:\.\d+)?)", text))

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def cluster():
    root = pathlib.Path(tempfile.mkdtemp(prefix="clavis-nodes-"))
    url, pg_name = create_postgres_database()
    master = base64.b64encode(os.urandom(32)).decode()
    remember(master)
    first_port = free_port()
    env = dict(os.environ)
    env.update({
        "RUST_LOG": "trace",
        "CLAVIS_DATABASE_URL": url,
        "CLAVIS_MASTER_KEY": master,
        # Every node signs as the one public address clients use (a load balancer's).
        "CLAVIS_PUBLIC_URL": f"https://localhost:{first_port}",
        "CLAVIS_JOBS__KEY_ROTATION_INTERVAL_SECONDS": str(JOB_INTERVAL),
        "CLAVIS_JOBS__REFRESH_INTERVAL_MS": str(REFRESH_MS),
        "CLAVIS_JOBS__USAGE_FLUSH_INTERVAL_MS": "200",
    })
    ca_dir = pathlib.Path(SHARED_CA["ca.pem"]).parent if SHARED_CA else None
    first = Node("a", root, env, ca_dir, port=first_port)  # the public URL's port is node a's
    ca = first.data / "tls" / "ca.pem"
    first.wait_ready(ca)
    others = [Node(name, root, env, ca.parent) for name in ("b", "c")]
    for node in others:
        node.wait_ready(ca)
    nodes = [first, *others]
    yield nodes, ca, root
    logs = [node.stop() for node in nodes]
    subprocess.run(["psql", POSTGRES_URL, "-c", f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)"], capture_output=True)
    for node, log in zip(nodes, logs):
        leaked = [value[:6] + "…" for value in REMEMBERED_HERE if value in log]
        assert not leaked, f"secrets appeared in node {node.name}'s log: {leaked}"


REMEMBERED_HERE: list[str] = []


def keep(value: str) -> str:
    REMEMBERED_HERE.append(value)
    return remember(value)


def cli(node: Node, *args: str) -> str:
    done = subprocess.run([str(BINARY), *args, "--data-dir", str(node.data), "-o", "json"], capture_output=True, text=True)
    assert done.returncode == 0, f"clavis {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_three_nodes_behave_as_one_under_load_and_node_loss(cluster):
    nodes, ca, root = cluster
    a = nodes[0]
    public_port = a.port
    bootstrap = json.loads((a.data / "bootstrap.json").read_text())
    keep(bootstrap["clientSecret"])
    tenant = bootstrap["tenantId"]
    worker = json.loads(cli(a, "app", "create", "worker"))
    added = json.loads(cli(a, "app", "secret", "add", "worker"))
    secret = keep(added["secretText"])
    cli(a, "vault", "create", "kv1")
    cli(a, "role", "assign", "--principal", worker["appId"], "--role", "Key Vault Secrets Officer", "--scope", "/vaults/kv1")
    vault_scope = f"https://vault.localhost:{public_port}/.default"

    def token_at(node: Node, session: requests.Session, client_secret: str = secret) -> requests.Response:
        return session.post(f"{node.url}/{tenant}/oauth2/v2.0/token", verify=str(ca), timeout=10, data={
            "grant_type": "client_credentials", "client_id": worker["appId"], "client_secret": client_secret, "scope": vault_scope})

    def vault(node: Node) -> str:
        return f"https://kv1.vault.localhost:{node.port}"

    # Role changes made on node a reach b and c within the refresh bound.
    deadline = time.time() + 10
    while True:
        with requests.Session() as s:
            answers = [token_at(n, s) for n in nodes]
            tokens = [r.json().get("access_token") for r in answers]
            puts = [s.put(f"{vault(n)}/secrets/warmup?api-version=7.6", verify=str(ca), timeout=10, json={"value": "w"},
                          headers={"Authorization": f"Bearer {t}"}) for n, t in zip(nodes, tokens)]
        if all(p.status_code == 200 for p in puts):
            break
        assert time.time() < deadline, [p.text for p in puts]
        time.sleep(0.2)

    def job_runs(node: Node) -> float:
        return node.metric(ca, r'clavis_job_runs_total\{job="signing_key_rotation",result="success"\}')

    # The node that will be killed is the one running the instance-wide jobs (the holder of the
    # maintenance lease), so the test also proves a survivor takes them over.
    first_runs = [job_runs(n) for n in nodes]
    time.sleep(JOB_INTERVAL * 2.5)
    deltas = [job_runs(n) - before for n, before in zip(nodes, first_runs)]
    victim = nodes[deltas.index(max(deltas))]
    assert sorted(deltas)[1] == 0, f"more than one node runs the jobs: {deltas}"
    survivors = [n for n in nodes if n is not victim]
    b = survivors[0]

    stop = threading.Event()
    lock = threading.Lock()
    issued: list[tuple[str, str]] = []
    acknowledged: list[tuple[str, str, str]] = []
    failures: list[str] = []
    to_dead = [0]
    served = {n.name: 0 for n in nodes}

    def client(thread: int):
        session = requests.Session()
        i = 0
        while not stop.is_set():
            node = nodes[(thread + i) % 3]
            i += 1
            try:
                answer = token_at(node, session)
                if answer.status_code != 200:
                    raise AssertionError(f"token {answer.status_code} {answer.text[:200]}")
                token = answer.json()["access_token"]
                name, value = f"s-{thread}-{i}", pysecrets.token_urlsafe(12)
                put = session.put(f"{vault(node)}/secrets/{name}?api-version=7.6", verify=str(ca), timeout=10,
                                  json={"value": value}, headers={"Authorization": f"Bearer {token}"})
                if put.status_code != 200:
                    raise AssertionError(f"set {put.status_code} {put.text[:200]}")
                with lock:
                    issued.append((node.name, token))
                    acknowledged.append((name, put.json()["id"].rsplit("/", 1)[1], value))
                    served[node.name] += 1
            except (requests.ConnectionError, requests.Timeout, AssertionError) as error:
                with lock:
                    # The victim is marked dead before it is killed, so every error the kill
                    # causes is counted here, and any other error is a failure.
                    if node is victim and not victim.alive:
                        to_dead[0] += 1
                    else:
                        failures.append(f"{node.name}: {error}")
                session = requests.Session()

    runs_before = sum(job_runs(n) for n in nodes)
    started = time.time()
    threads = [threading.Thread(target=client, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    time.sleep(KILL_AFTER)
    runs_victim = job_runs(victim)
    victim.alive = False
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    killed_at = time.time()
    runs_survivors_at_kill = sum(job_runs(n) for n in survivors)
    time.sleep(LOAD_SECONDS - KILL_AFTER)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.time() - started
    runs_after = sum(job_runs(n) for n in survivors)
    since_kill = time.time() - killed_at

    assert not failures, f"{len(failures)} requests to surviving nodes failed: {failures[:5]}"
    assert all(served[n.name] > 50 for n in survivors) and served[victim.name] > 10, served
    print(f"\n{len(acknowledged)} acknowledged writes in {elapsed:.1f} s over 3 nodes ({served}); "
          f"{to_dead[0]} requests met the killed node {victim.name}, the maintenance lease holder")

    # Every token from any node verifies with the JWKS of every surviving node.
    with requests.Session() as s:
        key_sets = {n.name: jwt.PyJWKSet.from_dict(s.get(f"{n.url}/{tenant}/discovery/v2.0/keys", verify=str(ca), timeout=5).json())
                    for n in survivors}
    for node_name, token in issued:
        header = jwt.get_unverified_header(token)
        for name, keys in key_sets.items():
            key = next(k for k in keys.keys if k.key_id == header["kid"])
            claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=f"https://vault.localhost:{public_port}",
                                options={"verify_exp": True})
            assert claims["iss"].startswith(f"https://localhost:{public_port}/"), claims["iss"]

    # Every acknowledged write is there, read from node b.
    with requests.Session() as s:
        token = token_at(b, s).json()["access_token"]
        for name, version, value in acknowledged:
            got = s.get(f"{vault(b)}/secrets/{name}/{version}?api-version=7.6", verify=str(ca), timeout=10,
                        headers={"Authorization": f"Bearer {token}"})
            assert got.status_code == 200 and got.json()["value"] == value, (name, got.status_code, got.text[:200])

    # Instance-wide jobs ran on one node at a time (about one run per interval in total, not one
    # per node), and kept running on the survivors after the kill.
    all_runs = runs_after + runs_victim - runs_before
    print(f"{all_runs:.0f} maintenance runs across the nodes in {elapsed:.1f} s")
    assert all_runs <= elapsed / JOB_INTERVAL + 3, f"{all_runs} maintenance runs in {elapsed:.1f} s: more than one node ran them"
    assert runs_after - runs_survivors_at_kill >= since_kill / JOB_INTERVAL - 5, "no survivor took over the maintenance lease"

    # A revocation made on one survivor is enforced by the other within the refresh bound.
    with requests.Session() as s:
        old_token = token_at(b, s).json()["access_token"]
    other = survivors[1]
    with requests.Session() as s:
        admin = s.post(f"{other.url}/{tenant}/oauth2/v2.0/token", verify=str(ca), timeout=10, data={
            "grant_type": "client_credentials", "client_id": bootstrap["clientId"], "client_secret": bootstrap["clientSecret"],
            "scope": "api://clavis/.default"}).json()["access_token"]
        revoked = s.post(f"{other.url}/v1.0/applications/{worker['appId']}/revokePassword", verify=str(ca), timeout=10,
                         json={"keyId": added["keyId"], "reason": "compromised"}, headers={"Authorization": f"Bearer {admin}"})
        assert revoked.status_code in (200, 204), revoked.text
    time.sleep(REFRESH_MS / 1000 * 3)
    with requests.Session() as s:
        assert token_at(b, s).status_code == 401
        refused = s.get(f"{vault(b)}/secrets/warmup?api-version=7.6", verify=str(ca), timeout=10,
                        headers={"Authorization": f"Bearer {old_token}"})
        assert refused.status_code == 401, refused.text

