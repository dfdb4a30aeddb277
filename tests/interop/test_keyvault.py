"""The real Azure Key Vault SDK (`azure-keyvault-secrets`, sync and aio) against Clavis vaults,
configured as a user would: only the vault URL, the authority and instance discovery change;
challenge-resource verification stays on."""

import asyncio
import os
import subprocess
import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient

from conftest import BINARY, remember


def admin_credential(clavis):
    b = clavis.bootstrap
    return ClientSecretCredential(b["tenantId"], b["clientId"], b["clientSecret"], authority=clavis.url, disable_instance_discovery=True)


@pytest.fixture(scope="module")
def vault(clavis):
    clavis.cli("vault", "create", "interop", "--retention-days", "7")
    return SecretClient(clavis.vault_url("interop"), admin_credential(clavis))


def test_every_secrets_operation(clavis, vault):
    created = vault.set_secret("alpha", remember("alpha-value-1"), tags={"env": "dev"}, content_type="text/plain")
    assert created.id.startswith(clavis.vault_url("interop") + "/secrets/alpha/")
    assert len(created.properties.version) == 32 and created.properties.tags == {"env": "dev"}
    assert vault.get_secret("alpha").value == "alpha-value-1"
    second = vault.set_secret("alpha", remember("alpha-value-2"))
    assert vault.get_secret("alpha").value == "alpha-value-2"
    assert vault.get_secret("alpha", created.properties.version).value == "alpha-value-1"
    versions = list(vault.list_properties_of_secret_versions("alpha"))
    assert {v.version for v in versions} == {created.properties.version, second.properties.version}

    for i in range(5):
        vault.set_secret(f"paged-{i}", remember(f"paged-value-{i}"))
    names = [p.name for p in vault.list_properties_of_secrets(max_page_size=2)]
    assert sorted(names) == sorted(set(names)) and {"alpha", "paged-0", "paged-4"} <= set(names)

    updated = vault.update_secret_properties("alpha", content_type="application/json", tags={"t": "1"}, expires_on=None)
    assert updated.content_type == "application/json" and updated.tags == {"t": "1"}

    backup = vault.backup_secret("alpha")
    deleted = vault.begin_delete_secret("alpha").result()
    assert deleted.recovery_id.endswith("/deletedsecrets/alpha")
    vault.begin_delete_secret("paged-0").wait()
    assert vault.get_deleted_secret("alpha").name == "alpha"
    assert {"alpha", "paged-0"} <= {d.name for d in vault.list_deleted_secrets()}

    with pytest.raises(ResourceExistsError) as raised:
        vault.set_secret("alpha", "reuse")
    assert "ObjectIsDeletedButRecoverable" in str(raised.value)

    vault.begin_recover_deleted_secret("alpha").wait()
    assert vault.get_secret("alpha").value == "alpha-value-2"

    vault.begin_delete_secret("alpha").wait()
    vault.purge_deleted_secret("alpha")
    with pytest.raises(ResourceNotFoundError):
        vault.get_secret("alpha")
    restored = vault.restore_secret_backup(backup)
    assert restored.name == "alpha"
    assert vault.get_secret("alpha").value == "alpha-value-2"
    assert len(list(vault.list_properties_of_secret_versions("alpha"))) == 2

    disabled = vault.set_secret("off", "x", enabled=False)
    with pytest.raises(HttpResponseError) as raised:
        vault.get_secret("off", disabled.properties.version)
    assert raised.value.status_code == 403 and "SecretDisabled" in str(raised.value)


def test_async_client(clavis):
    b = clavis.bootstrap

    async def run():
        async with AsyncClientSecretCredential(b["tenantId"], b["clientId"], b["clientSecret"], authority=clavis.url) as credential:
            async with AsyncSecretClient(clavis.vault_url("interop"), credential) as client:
                await client.set_secret("async-one", remember("async-value"))
                got = await client.get_secret("async-one")
                deleted = await client.delete_secret("async-one")
                recovered = await client.recover_deleted_secret("async-one")
                return got.value, deleted.name, recovered.name

    assert asyncio.run(run()) == ("async-value", "async-one", "async-one")


def test_roles_limit_what_an_application_reads(clavis, vault):
    vault.set_secret("for-worker", remember("worker-value"))
    vault.set_secret("not-for-worker", remember("hidden-value"))
    worker = clavis.create_app("vault-worker")
    secret = clavis.add_secret(worker["appId"])["secretText"]
    clavis.cli("role", "assign", "--principal", worker["appId"], "--role", "Key Vault Secrets User", "--scope", "/vaults/interop/secrets/for-worker")
    credential = ClientSecretCredential(clavis.tenant_id, worker["appId"], secret, authority=clavis.url, disable_instance_discovery=True)
    client = SecretClient(clavis.vault_url("interop"), credential)
    assert client.get_secret("for-worker").value == "worker-value"
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("not-for-worker")
    assert raised.value.status_code == 403 and "ForbiddenByRbac" in str(raised.value)
    with pytest.raises(HttpResponseError) as raised:
        client.set_secret("for-worker", "overwrite")
    assert raised.value.status_code == 403


def test_throttled_requests_are_retried_by_the_sdk(clavis):
    clavis.cli("vault", "create", "slow", "--rate-limit", "2")
    client = SecretClient(clavis.vault_url("slow"), admin_credential(clavis))
    client.set_secret("t", remember("throttle-value"))
    started = time.monotonic()
    for _ in range(6):
        assert client.get_secret("t").value == "throttle-value"
    assert time.monotonic() - started >= 1.0, "the vault's rate limit was not applied"


def test_clavis_run_injects_secrets(clavis, vault):
    vault.set_secret("run-db", remember("run-db-value"))
    done = subprocess.run(
        [str(BINARY), "run", "--data-dir", str(clavis.dir / "data"), "--env", "DB_PASSWORD=interop/run-db", "--", "sh", "-c", 'test "$DB_PASSWORD" = run-db-value && echo injected'],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "injected"
    got = clavis.cli("secret", "get", "run-db", "--vault", "interop")
    assert got.stdout == "run-db-value\n"


def test_a_revoked_secret_is_refused_by_the_vault_at_once(clavis, vault):
    from azure.core.exceptions import ClientAuthenticationError

    vault.set_secret("revocation-target", remember("revocation-value"))
    app = clavis.create_app("soon-revoked")
    added = clavis.add_secret(app["appId"])
    clavis.cli("role", "assign", "--principal", app["appId"], "--role", "Key Vault Secrets User", "--scope", "/vaults/interop")
    credential = ClientSecretCredential(clavis.tenant_id, app["appId"], added["secretText"], authority=clavis.url, disable_instance_discovery=True)
    client = SecretClient(clavis.vault_url("interop"), credential)
    assert client.get_secret("revocation-target").value == "revocation-value"
    clavis.cli("app", "secret", "revoke", app["appId"], "--key-id", added["keyId"], "--reason", "compromised")
    # The client still holds its cached token; the vault refuses it, and a new one cannot be had.
    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as raised:
        client.get_secret("revocation-target")
    assert "401" in str(raised.value) or "revoked" in str(raised.value) or "AADSTS7000215" in str(raised.value)
