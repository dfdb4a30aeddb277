"""The real Entra client libraries against Clavis: azure-identity (sync and aio) and MSAL
Python get tokens, the tokens verify against Clavis's JWKS, and failures surface the AADSTS
codes of the contract."""

import asyncio
import datetime
import time

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, EnvironmentCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential

from conftest import remember


@pytest.fixture(scope="module")
def apps(clavis):
    resource = clavis.create_app("inventory-api", "api://inventory")
    clavis.cli("app", "role", "add", resource["appId"], "--value", "Inventory.Read")
    client = clavis.create_app("inventory-worker")
    clavis.cli("app", "role", "grant", "--client", client["appId"], "--resource", resource["appId"], "--role", "Inventory.Read")
    secret = clavis.add_secret(client["appId"], "--description", "interop")
    return {"resource": resource, "client": client, "secret": secret["secretText"], "key_id": secret["keyId"]}


def verify(clavis, token: str, audience: str) -> dict:
    """Verifies the signature against the JWKS with PyJWT, independently of Clavis's own code."""
    remember(token)
    header = jwt.get_unverified_header(token)
    jwks = jwt.PyJWKSet.from_dict(clavis.jwks())
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=audience, options={"require": ["exp", "iat", "nbf", "aud", "iss"]})
    assert claims["tid"] == clavis.tenant_id
    assert claims["idtyp"] == "app"
    return claims


def test_azure_identity_sync_gets_and_caches_a_token(clavis, apps):
    credential = ClientSecretCredential(clavis.tenant_id, apps["client"]["appId"], apps["secret"], authority=clavis.url, disable_instance_discovery=True)
    first = credential.get_token("api://inventory/.default")
    second = credential.get_token("api://inventory/.default")
    assert first.token == second.token, "the second call is served from the client's cache"
    assert first.expires_on - time.time() > 3000
    claims = verify(clavis, first.token, "api://inventory")
    assert claims["iss"] == f"{clavis.url}/{clavis.tenant_id}/"
    assert claims["appid"] == apps["client"]["appId"]
    assert claims["roles"] == ["Inventory.Read"]


def test_azure_identity_aio_gets_a_token(clavis, apps):
    async def run():
        async with AsyncClientSecretCredential(clavis.tenant_id, apps["client"]["appId"], apps["secret"], authority=clavis.url) as credential:
            return await credential.get_token("api://inventory/.default")

    token = asyncio.run(run())
    verify(clavis, token.token, "api://inventory")


def test_msal_with_guid_and_domain_tenants(clavis, apps):
    for tenant in (clavis.tenant_id, clavis.tenant_domain):
        app = msal.ConfidentialClientApplication(apps["client"]["appId"], client_credential=apps["secret"], authority=f"{clavis.url}/{tenant}", instance_discovery=False)
        result = app.acquire_token_for_client(scopes=["api://inventory/.default"])
        assert "access_token" in result, result
        assert result["token_type"] == "Bearer"
        again = app.acquire_token_for_client(scopes=["api://inventory/.default"])
        assert again["token_source"] == "cache"
        verify(clavis, result["access_token"], "api://inventory")


def test_v2_resource_tokens_carry_the_client_id_audience(clavis, apps):
    api = clavis.cli_json("app", "create", "v2-api", "--identifier-uri", "api://v2-api", "--token-version", "2")
    app = msal.ConfidentialClientApplication(apps["client"]["appId"], client_credential=apps["secret"], authority=f"{clavis.url}/{clavis.tenant_id}", instance_discovery=False)
    result = app.acquire_token_for_client(scopes=["api://v2-api/.default"])
    claims = verify(clavis, result["access_token"], api["appId"])
    assert claims["ver"] == "2.0" and claims["azp"] == apps["client"]["appId"]
    assert claims["iss"] == f"{clavis.url}/{clavis.tenant_id}/v2.0"
    assert "roles" not in claims


def test_wrong_secret_surfaces_aadsts7000215(clavis, apps):
    credential = ClientSecretCredential(clavis.tenant_id, apps["client"]["appId"], "definitely-wrong", authority=clavis.url, disable_instance_discovery=True)
    with pytest.raises(ClientAuthenticationError) as raised:
        credential.get_token("api://inventory/.default")
    assert "AADSTS7000215" in str(raised.value)
    app = msal.ConfidentialClientApplication(apps["client"]["appId"], client_credential="definitely-wrong", authority=f"{clavis.url}/{clavis.tenant_id}", instance_discovery=False)
    result = app.acquire_token_for_client(scopes=["api://inventory/.default"])
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000215]


def test_expired_secret_surfaces_aadsts7000222(clavis, apps):
    end = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    short = clavis.add_secret(apps["client"]["appId"], "--end", end)
    time.sleep(3.5)
    credential = ClientSecretCredential(clavis.tenant_id, apps["client"]["appId"], short["secretText"], authority=clavis.url, disable_instance_discovery=True)
    with pytest.raises(ClientAuthenticationError) as raised:
        credential.get_token("api://inventory/.default")
    assert "AADSTS7000222" in str(raised.value)

    async def run():
        async with AsyncClientSecretCredential(clavis.tenant_id, apps["client"]["appId"], short["secretText"], authority=clavis.url) as credential:
            await credential.get_token("api://inventory/.default")

    with pytest.raises(ClientAuthenticationError) as raised:
        asyncio.run(run())
    assert "AADSTS7000222" in str(raised.value)
    clavis.cli("app", "secret", "remove", apps["client"]["appId"], "--key-id", short["keyId"])


def test_unknown_client_and_bad_scope_codes(clavis, apps):
    app = msal.ConfidentialClientApplication("00000000-0000-4000-8000-000000000001", client_credential=apps["secret"], authority=f"{clavis.url}/{clavis.tenant_id}", instance_discovery=False)
    result = app.acquire_token_for_client(scopes=["api://inventory/.default"])
    assert result["error"] == "unauthorized_client" and result["error_codes"] == [700016]
    app = msal.ConfidentialClientApplication(apps["client"]["appId"], client_credential=apps["secret"], authority=f"{clavis.url}/{clavis.tenant_id}", instance_discovery=False)
    result = app.acquire_token_for_client(scopes=["api://inventory/read"])
    assert result["error"] == "invalid_scope" and result["error_codes"] == [1002012]
    result = app.acquire_token_for_client(scopes=["api://nothing/.default"])
    assert result["error"] == "invalid_resource" and result["error_codes"] == [500011]


def test_environment_only_configuration_through_adfs(clavis, apps, monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", "adfs")
    monkeypatch.setenv("AZURE_CLIENT_ID", apps["client"]["appId"])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", apps["secret"])
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", clavis.url)
    token = EnvironmentCredential().get_token("api://inventory/.default")
    verify(clavis, token.token, "api://inventory")


def test_curl_style_basic_auth_and_last_use(clavis, apps):
    response = requests.post(
        f"{clavis.url}/{clavis.tenant_id}/oauth2/v2.0/token",
        auth=(apps["client"]["appId"], apps["secret"]),
        data={"grant_type": "client_credentials", "scope": "api://inventory/.default"},
        verify=str(clavis.ca),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    verify(clavis, response.json()["access_token"], "api://inventory")
    time.sleep(0.6)
    listed = clavis.cli_json("app", "secret", "list", apps["client"]["appId"])
    used = next(c for c in listed if c["keyId"] == apps["key_id"])
    assert used["lastUsed"]["useCount"] >= 1
    assert used["state"] == "active"


def test_cli_token_get_decodes(clavis):
    done = clavis.cli("token", "get", "--decode")
    assert '"aud"' in done.stdout and '"roles"' in done.stdout and "Clavis.Administrator" in done.stdout
    show = clavis.cli("tenant", "show")
    assert clavis.tenant_id in show.stdout
