"""Transport and headers, checked from outside with OpenSSL (through Python's ssl module): TLS 1.2
and 1.3 with forward-secret AEAD suites only, HSTS and strict headers, no CORS, no server banner."""
import socket
import ssl

import pytest
import requests

# The test offers deprecated protocol versions on purpose, to see the server refuse them.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def handshake(clavis, configure) -> tuple[str, str] | None:
    """Tries a TLS handshake with a client configured by `configure`; returns (version, cipher)
    or None when the server refused it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(clavis.ca))
    configure(context)
    with socket.create_connection(("127.0.0.1", clavis.port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version(), tls.cipher()[0]
        except (ssl.SSLError, ConnectionResetError):
            return None


def only(version: ssl.TLSVersion, ciphers: str | None = None):
    def configure(context: ssl.SSLContext):
        if ciphers:
            context.set_ciphers(ciphers)
        context.minimum_version = version
        context.maximum_version = version
    return configure


def test_modern_tls_only(clavis):
    assert handshake(clavis, only(ssl.TLSVersion.TLSv1_3))[0] == "TLSv1.3"
    version, cipher = handshake(clavis, only(ssl.TLSVersion.TLSv1_2))
    assert version == "TLSv1.2" and "ECDHE" in cipher and ("GCM" in cipher or "CHACHA20" in cipher), cipher
    # Old protocol versions, allowed on the client side for the test, are refused by the server.
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        assert handshake(clavis, only(old, "DEFAULT:@SECLEVEL=0")) is None, old
    # TLS 1.2 offering only CBC suites, or only static-RSA key exchange: refused.
    assert handshake(clavis, only(ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:AES128-SHA:@SECLEVEL=0")) is None
    assert handshake(clavis, only(ssl.TLSVersion.TLSv1_2, "AES128-GCM-SHA256:AES256-GCM-SHA384")) is None


@pytest.mark.parametrize("path", ["/healthz", "/v1.0/applications", "/portal/signin", "/nope"])
def test_strict_headers_and_no_banner(clavis, path):
    response = requests.get(f"{clavis.url}{path}", verify=str(clavis.ca), timeout=5, allow_redirects=False)
    headers = {k.lower(): v for k, v in response.headers.items()}
    assert "server" not in headers and "x-powered-by" not in headers, headers
    hsts = headers["strict-transport-security"]
    assert int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000, hsts
    assert headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in headers
    if path.startswith("/portal"):
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"


def test_cors_is_off(clavis):
    preflight = requests.options(f"{clavis.url}/v1.0/applications", verify=str(clavis.ca), timeout=5, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in {k.lower() for k in preflight.headers}
    token = requests.post(f"{clavis.url}/{clavis.tenant_id}/oauth2/v2.0/token", verify=str(clavis.ca), timeout=5,
                          headers={"Origin": "https://evil.example"}, data={"grant_type": "client_credentials"})
    assert "access-control-allow-origin" not in {k.lower() for k in token.headers}
