// End-to-end tests of the Clavis web portal in a real browser: Debian's Chromium, headless,
// driven by playwright-core, against the real `clavis` binary over real TLS (the browser trusts
// the server's certificate by its SPKI pin, nothing else is ignored).
//
// The story: sign in with the keyboard, register an application, add a secret and read it from
// the one-time dialog, get a token with it from the token endpoint, see its last use, revoke it,
// walk the vault pages (create, set, reveal, delete, recover), the logs and the error codes; then
// the CSRF, cross-site and session-expiry cases. Screenshots of the main pages are kept in
// target/portal-screenshots. The server's TRACE log is scanned for every secret the test made.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, mkdirSync, openSync } from "node:fs";
import { createHash, X509Certificate } from "node:crypto";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

const ROOT = resolve(import.meta.dirname, "../..");
const BINARY = process.env.CLAVIS_BINARY ?? join(ROOT, "target/debug/clavis");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS = join(ROOT, "target/portal-screenshots");
const IDLE_SECONDS = 60; // portal.session_idle_minutes = 1 for this server
const PASSWORD = "correct horse battery staple " + Math.random().toString(36).slice(2);
const secrets = [PASSWORD];

let dir, port, base, ca, server, browser, logPath, tenantId;

function freePort() {
  return new Promise((done) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
  });
}

/** An HTTPS request that trusts only Clavis's development CA. */
function call(method, path, { form, headers = {} } = {}) {
  const body = form ? new URLSearchParams(form).toString() : undefined;
  return new Promise((done, fail) => {
    const req = httpsRequest(
      `${base}${path}`,
      { method, ca, headers: { ...headers, ...(body ? { "content-type": "application/x-www-form-urlencoded" } : {}) } },
      (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => done({ status: res.statusCode, headers: res.headers, text }));
      },
    );
    req.on("error", fail);
    if (body) req.write(body);
    req.end();
  });
}

function cli(args, input) {
  const done = spawnSync(BINARY, [...args, "--data-dir", join(dir, "data")], { input, encoding: "utf8" });
  assert.equal(done.status, 0, `clavis ${args.join(" ")}: ${done.stderr}`);
  return done.stdout;
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  assert.ok(existsSync(BINARY), `build the binary first (cargo build --bin clavis): ${BINARY}`);
  assert.ok(existsSync(CHROMIUM), `Chromium is needed at ${CHROMIUM} (apt-get install chromium)`);
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), "clavis-portal-"));
  port = await freePort();
  base = `https://localhost:${port}`;
  logPath = join(dir, "server.log");
  const log = openSync(logPath, "w");
  server = spawn(BINARY, ["serve"], {
    stdio: ["ignore", log, log],
    env: {
      ...process.env,
      RUST_LOG: "trace",
      CLAVIS_LISTEN: `127.0.0.1:${port}`,
      CLAVIS_DATA_DIR: join(dir, "data"),
      CLAVIS_JOBS__USAGE_FLUSH_INTERVAL_MS: "200",
      CLAVIS_PORTAL__SESSION_IDLE_MINUTES: String(IDLE_SECONDS / 60),
    },
  });
  const caPath = join(dir, "data/tls/ca.pem");
  for (let i = 0; ; i++) {
    assert.equal(server.exitCode, null, `clavis serve exited: ${readFileSync(logPath, "utf8").slice(-3000)}`);
    if (existsSync(caPath)) {
      ca = readFileSync(caPath);
      try {
        if ((await call("GET", "/readyz")).status === 200) break;
      } catch {}
    }
    assert.ok(i < 600, "clavis serve did not become ready in 60 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  tenantId = JSON.parse(readFileSync(join(dir, "data/bootstrap.json"), "utf8")).tenantId;
  cli(["admin", "create", "alice", "--password-stdin"], PASSWORD + "\n");
  // Chromium accepts the server's certificate because its public key is pinned, as a managed
  // browser would trust an enterprise CA; every other TLS check stays on.
  const leaf = new X509Certificate(readFileSync(join(dir, "data/tls/server.pem")));
  const spki = createHash("sha256").update(leaf.publicKey.export({ type: "spki", format: "der" })).digest("base64");
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [`--ignore-certificate-errors-spki-list=${spki}`, "--no-sandbox"],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
  }
  if (logPath && existsSync(logPath)) {
    const log = readFileSync(logPath, "utf8");
    for (const secret of secrets) {
      assert.ok(!log.includes(secret), `a secret value leaked into the server log (${secret.slice(0, 3)}…)`);
    }
  }
});

async function signIn(page) {
  await page.goto(`${base}/`);
  await page.waitForURL(/\/portal\/signin/);
  // Keyboard only: the user name field has the focus, Tab reaches the password, Enter submits.
  assert.equal(await page.evaluate(() => document.activeElement.id), "username");
  await page.keyboard.type("alice");
  await page.keyboard.press("Tab");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/portal`, { timeout: 5000 }).catch(async (error) => {
    throw new Error(`sign-in did not reach the dashboard: ${await page.textContent("main")}`, { cause: error });
  });
}

test("the portal story in Chromium", async () => {
  // A second session, left idle from the start, proves idle expiry at the end.
  const idleContext = await browser.newContext();
  const idlePage = await idleContext.newPage();
  await signIn(idlePage);
  const idleSince = Date.now();

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  page.on("dialog", (dialog) => dialog.accept());
  await shot(page, "01-sign-in");
  await signIn(page);
  assert.match(await page.textContent("h1"), /Dashboard/);
  // The first Tab reaches the skip link, which moves the focus past the navigation.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  await shot(page, "02-dashboard");

  // Register an application.
  await page.click("nav >> text=Applications");
  await page.fill("#name", "orders-worker");
  await page.getByRole("button", { name: "Register" }).click();
  await page.waitForURL(/\/portal\/apps\/[0-9a-f-]+\?done=created/);
  const clientId = await page.textContent("#client-id");
  assert.equal(await page.textContent("#tenant-id"), tenantId);
  assert.equal(await page.textContent("#token-v2"), `${base}/${tenantId}/oauth2/v2.0/token`);
  await shot(page, "03-application-overview");

  // Certificates & secrets: add one, read it from the one-time dialog, copy it.
  await page.click("text=Certificates & secrets");
  await page.fill("#description", "first secret");
  await page.selectOption("#expires", "90");
  await page.click("#add-secret button[type=submit]");
  const dialog = page.locator("dialog#new-secret");
  await dialog.waitFor({ state: "visible" });
  assert.equal(await dialog.evaluate((d) => d.matches(":modal")), true, "the one-time dialog is modal");
  const secret = (await page.textContent("#secret-value")).trim();
  secrets.push(secret);
  assert.match(secret, /^[A-Za-z0-9_~.-]{44}$/);
  assert.match(await dialog.textContent(), /only time it is shown/);
  await dialog.locator("button.copy").click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await shot(page, "04-new-secret-dialog");
  await page.getByRole("button", { name: "I have copied it" }).click();
  await dialog.waitFor({ state: "hidden" });
  await page.reload();
  assert.ok(!(await page.content()).includes(secret), "the value is gone once the dialog is left");
  assert.equal(await page.locator("#secrets tbody tr").count(), 1, "a reload does not post the form again");

  // Use it at the token endpoint, then see its last use appear.
  const token = await call("POST", `/${tenantId}/oauth2/v2.0/token`, {
    form: { grant_type: "client_credentials", client_id: clientId, client_secret: secret, scope: "api://clavis/.default" },
  });
  assert.equal(token.status, 200, token.text);
  secrets.push(JSON.parse(token.text).access_token);
  const row = page.locator("#secrets tbody tr").first();
  for (let i = 0; !(await row.locator("td.last-used").textContent()).includes("1 uses"); i++) {
    assert.ok(i < 50, "last use did not appear");
    await new Promise((r) => setTimeout(r, 200));
    await page.reload();
  }
  assert.match(await row.textContent(), /Active/);
  await shot(page, "05-certificates-and-secrets");

  // Revoke it as compromised: the secret stops working at once.
  await row.getByRole("button", { name: "Revoke as compromised" }).click();
  await page.waitForURL(/done=revoked/);
  assert.match(await page.textContent(".notice.success"), /Revoked/);
  const refused = await call("POST", `/${tenantId}/oauth2/v2.0/token`, {
    form: { grant_type: "client_credentials", client_id: clientId, client_secret: secret, scope: "api://clavis/.default" },
  });
  assert.equal(refused.status, 401, refused.text);

  // App roles and assignments.
  await page.click("text=App roles & assignments");
  await page.fill("#value", "Orders.Read");
  await page.click("#add-role button");
  await page.waitForURL(/done=role-added/);
  await page.selectOption("#grant_role", `${clientId}|Orders.Read`);
  await page.click("#grant button");
  await page.waitForURL(/done=granted/);
  assert.match(await page.textContent("#held"), /Orders\.Read/);
  await shot(page, "06-roles");

  // Search finds it.
  await page.goto(`${base}/portal/apps?q=orders`);
  assert.equal(await page.locator("tbody tr").count(), 1);

  // Vaults: create, set a secret, reveal it on click, delete and recover it.
  await page.click("nav >> text=Vaults");
  await page.fill("#name", "kv1");
  await page.fill("#retention_days", "7");
  await page.getByRole("button", { name: "Create", exact: true }).click();
  await page.waitForURL(/\/portal\/vaults\/kv1\?done=created/);
  const value = "vault-value-" + Math.random().toString(36).slice(2);
  secrets.push(value);
  await page.fill("#secret_name", "db-password");
  await page.fill("#value", value);
  await page.fill("#content_type", "text/plain");
  await page.fill("#tags", "env=dev");
  await page.click("#set-secret button");
  await page.waitForURL(/\/secrets\/db-password\?done=set/);
  assert.ok(!(await page.content()).includes(value), "values appear only on request");
  await page.getByRole("button", { name: "Reveal value" }).first().click();
  assert.equal((await page.textContent("#revealed-value")).trim(), value);
  await shot(page, "07-vault-secret-revealed");
  await page.fill("#value", value + "-v2");
  secrets.push(value + "-v2");
  await page.click("#new-version button");
  await page.waitForURL(/done=set/);
  assert.equal(await page.locator("#versions tbody tr").count(), 2);
  await page.getByRole("button", { name: "Delete secret" }).click();
  await page.waitForURL(/\/portal\/vaults\/kv1\?done=deleted/);
  assert.match(await page.textContent("#deleted"), /db-password/);
  await shot(page, "08-vault");
  await page.locator("#deleted").getByRole("button", { name: "Recover" }).click();
  await page.waitForURL(/done=recovered/);
  assert.match(await page.textContent("#secrets"), /db-password/);

  // Logs, events and error codes.
  await page.click("nav >> text=Audit log");
  assert.match(await page.textContent("#chain"), /Chain intact/);
  assert.match(await page.textContent("#audit"), /vaultSecret\.read/);
  await shot(page, "09-audit");
  await page.click("nav >> text=Sign-in logs");
  assert.match(await page.textContent("#signins"), /7000215|failure/);
  await shot(page, "10-sign-ins");
  await page.click("nav >> text=Events");
  assert.match(await page.textContent("#events"), /CredentialCreated/);
  await page.click("nav >> text=Error codes");
  await page.click("text=7000222");
  assert.match(await page.textContent("body"), /Client secret expired/);

  // Dark mode and a phone-sized screen.
  await page.emulateMedia({ colorScheme: "dark" });
  await page.goto(`${base}/portal`);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(background, "rgb(247, 247, 248)", "dark mode changes the palette");
  await shot(page, "11-dashboard-dark");
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, "12-dashboard-phone");
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 900 });

  // CSRF: a same-origin post with a wrong token is refused and changes nothing.
  const forged = await page.evaluate(async () => {
    const res = await fetch("/portal/apps", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "csrf=00000000000000000000000000000000&name=forged-app",
    });
    return { status: res.status, text: await res.text() };
  });
  assert.equal(forged.status, 403);
  assert.match(forged.text, /security token/);
  // A form on another site posting to Clavis: the session cookie is SameSite=Strict and the
  // origin is checked, so nothing is created.
  const evil = await context.newPage();
  await evil.setContent(
    `<form id="f" method="post" action="${base}/portal/apps"><input name="csrf" value="x"><input name="name" value="cross-site-app"></form>`,
  );
  await Promise.all([evil.waitForNavigation(), evil.evaluate(() => document.getElementById("f").submit())]);
  assert.ok(!(await evil.content()).includes("cross-site-app"));
  await page.goto(`${base}/portal/apps`);
  const names = await page.textContent("table");
  assert.ok(!names.includes("forged-app") && !names.includes("cross-site-app"), names);

  // Sign-out ends the session.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/reason=signedout/);
  await page.goto(`${base}/portal/vaults`);
  await page.waitForURL(/\/portal\/signin\?next=\/portal\/vaults/);

  // Idle expiry: the session left alone since the start has expired.
  const wait = IDLE_SECONDS * 1000 + 2000 - (Date.now() - idleSince);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await idlePage.goto(`${base}/portal/apps`);
  await idlePage.waitForURL(/reason=expired/);
  assert.match(await idlePage.textContent("main"), /Your session has expired/);
  await shot(idlePage, "13-session-expired");
  await idleContext.close();
  await context.close();
});
