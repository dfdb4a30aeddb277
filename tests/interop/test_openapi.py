"""The management API against its own OpenAPI document: schemathesis (from PyPI) generates
requests from `/openapi.json` (valid and invalid ones, and sequences of calls), sends them to the
real server with an administrator's token, and checks every answer: no 5xx, every status and body
as the document says, invalid requests refused.

Two of schemathesis's checks are left out, each for a stated reason:
- `positive_data_acceptance` expects every schema-valid request to succeed, but the API's rules go
  beyond what JSON Schema says (credential-policy windows, references to objects that must exist,
  names that must be unique); those refusals are 400, 404 or 409 by design.
- `ensure_resource_availability` follows links it infers by parameter name, such as from a new
  application to that application's rotation policy, which does not exist until one is set.
"""
import json
import subprocess

import requests

from conftest import BINARY

CHECKS_LEFT_OUT = "positive_data_acceptance,ensure_resource_availability"


def test_the_api_keeps_to_its_openapi_document(clavis):
    document = requests.get(f"{clavis.url}/openapi.json", verify=str(clavis.ca), timeout=5).json()
    assert document["openapi"].startswith("3.")
    operations = sum(len(item) for item in document["paths"].values())
    token = requests.post(f"{clavis.url}/{clavis.tenant_id}/oauth2/v2.0/token", verify=str(clavis.ca), timeout=5, data={
        "grant_type": "client_credentials", "client_id": clavis.bootstrap["clientId"], "client_secret": clavis.bootstrap["clientSecret"],
        "scope": "api://clavis/.default"}).json()["access_token"]
    schemathesis = BINARY.parents[2] / ".venv" / "bin" / "schemathesis"
    run = subprocess.run([
        str(schemathesis), "run", f"{clavis.url}/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--tls-verify", str(clavis.ca),
        "--max-examples", "25",
        "--exclude-checks", CHECKS_LEFT_OUT,
        "--seed", "20261127",
        # A loaded CI machine can be slow; a slow answer is not a wrong one (a 5xx or a wrong
        # shape still fails the run).
        "--request-timeout", "60",
        "--no-color",
    ], capture_output=True, text=True, timeout=900)
    summary = run.stdout[-4000:]
    print(f"\nschemathesis against {operations} operations:\n" + "\n".join(l for l in summary.splitlines() if "generated" in l or "Tested" in l))
    if run.returncode != 0:
        errors = run.stdout[run.stdout.find("ERRORS"):][:6000] if "ERRORS" in run.stdout else ""
        raise AssertionError(errors + summary + run.stderr[-2000:])
    # The server is still healthy and its audit chain intact after the run.
    assert requests.get(f"{clavis.url}/readyz", verify=str(clavis.ca), timeout=5).status_code == 200
    verified = json.loads(subprocess.run([str(BINARY), "audit", "verify", "--data-dir", str(clavis.dir / "data"), "-o", "json"],
                                         capture_output=True, text=True, check=True).stdout)
    assert verified["intact"], verified
