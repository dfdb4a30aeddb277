"""Master-key rotation while clients are busy: `clavis keys rotate-master` re-wraps every key
under a new master key while token requests and vault reads run at full speed, with zero failed
requests; afterwards the server restarts with the new key and every value still decrypts."""
import json
import threading
import time

import requests

from conftest import remember


def test_master_key_rotates_under_load_with_zero_failed_requests(clavis):
    worker = clavis.create_app("rotation-load-worker")
    secret = clavis.add_secret(worker["appId"])["secretText"]
    clavis.cli("vault", "create", "mkrot")
    clavis.cli("role", "assign", "--principal", worker["appId"], "--role", "Key Vault Secrets Officer", "--scope", "/vaults/mkrot")
    ca = str(clavis.ca)
    token_url = f"{clavis.url}/{clavis.tenant_id}/oauth2/v2.0/token"
    scope = f"https://vault.localhost:{clavis.port}/.default"
    vault = f"https://mkrot.vault.localhost:{clavis.port}"

    def vault_token(session):
        answer = session.post(token_url, verify=ca, timeout=10, data={
            "grant_type": "client_credentials", "client_id": worker["appId"], "client_secret": secret, "scope": scope})
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    with requests.Session() as s:
        token = vault_token(s)
        value = remember("value-before-rotation-" + worker["appId"][:8])
        put = s.put(f"{vault}/secrets/kept?api-version=7.6", verify=ca, timeout=10, json={"value": value},
                    headers={"Authorization": f"Bearer {token}"})
        assert put.status_code == 200, put.text

    master_before = (clavis.dir / "data" / "master.key").read_text()
    remember(master_before.strip())
    stop = threading.Event()
    failures: list[str] = []
    done = [0]
    lock = threading.Lock()

    def load():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    token = vault_token(s)
                    got = s.get(f"{vault}/secrets/kept?api-version=7.6", verify=ca, timeout=10, headers={"Authorization": f"Bearer {token}"})
                    ok = got.status_code == 200 and got.json()["value"] == value
                    with lock:
                        if ok:
                            done[0] += 1
                        else:
                            failures.append(f"{got.status_code} {got.text[:200]}")
                except Exception as error:  # noqa: BLE001 - any failure counts
                    with lock:
                        failures.append(repr(error))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    rotated = clavis.cli("keys", "rotate-master")
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert not failures, f"{len(failures)} requests failed during the rotation: {failures[:3]}"
    assert done[0] > 50, done[0]
    master_after = (clavis.dir / "data" / "master.key").read_text()
    remember(master_after.strip())
    assert master_after != master_before, rotated.stdout
    print(f"\n{done[0]} token requests and vault reads during the master-key rotation, 0 failed")
    # A restart with the new key opens everything, including what was sealed before.
    clavis.restart()
    with requests.Session() as s:
        got = s.get(f"{vault}/secrets/kept?api-version=7.6", verify=ca, timeout=10, headers={"Authorization": f"Bearer {vault_token(s)}"})
        assert got.status_code == 200 and got.json()["value"] == value
