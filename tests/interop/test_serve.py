"""`clavis serve` as a user meets it: invalid settings stop it with a message naming the setting,
and the CLI explains what to do when there is no server to talk to."""

import os
import subprocess
import tempfile

from conftest import BINARY


def serve_with(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_overrides)
    with tempfile.TemporaryDirectory() as directory:
        env.setdefault("CLAVIS_DATA_DIR", directory)
        return subprocess.run([str(BINARY), "serve"], env=env, capture_output=True, text=True, timeout=30)


def test_invalid_settings_stop_the_start_with_a_clear_error():
    cases = {
        "CLAVIS_LISTEN": ("not-an-address", "listen"),
        "CLAVIS_PUBLIC_URL": ("http://localhost:8443", "https"),
        "CLAVIS_TENANT__SIGNING_ALGORITHM": ("HS256", "signing_algorithm"),
        "CLAVIS_TOKENS__LIFETIME_MIN_SECONDS": ("10", "lifetime_min_seconds"),
        "CLAVIS_DATABASE_URL": ("mysql://x", "database_url"),
        "CLAVIS_MASTER_KEY": ("too-short", "CLAVIS_MASTER_KEY"),
    }
    for name, (value, named) in cases.items():
        done = serve_with({name: value})
        assert done.returncode != 0, f"{name}={value} was accepted"
        assert named in done.stderr, f"{name}: {done.stderr}"


def test_cli_without_a_server_says_how_to_start_one():
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run([str(BINARY), "app", "list", "--data-dir", directory], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "clavis serve" in done.stderr
