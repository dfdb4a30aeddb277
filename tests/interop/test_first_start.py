"""A first start opens the portal with no CLI: bootstrap.json (0600) names the first portal
account and its generated password, and signing in with them works; the password is in no log."""
import re
import stat

import requests

from conftest import remember


def test_the_first_start_gives_a_portal_account(clavis):
    path = clavis.dir / "data" / "bootstrap.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    portal = clavis.bootstrap["portal"]
    password = remember(portal["password"])
    assert portal["userName"] == "admin" and len(password) >= 20
    assert portal["url"] == f"{clavis.url}/portal"
    with requests.Session() as s:
        page = s.get(f"{clavis.url}/portal/signin", verify=str(clavis.ca), timeout=5)
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        signed_in = s.post(f"{clavis.url}/portal/signin", verify=str(clavis.ca), timeout=5, allow_redirects=False,
                           data={"csrf": csrf, "next": "/portal", "username": "admin", "password": password})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/portal", signed_in.text[:300]
        dashboard = s.get(f"{clavis.url}/portal", verify=str(clavis.ca), timeout=5)
        assert dashboard.status_code == 200 and "Dashboard" in dashboard.text
