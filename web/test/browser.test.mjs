// The browser test: headless Debian Chromium, driven by playwright-core, opens the web chat
// page served by `hotline serve --web` as two users, sends a message each way, checks both
// see both, reloads one page and checks the history is still there, and keeps screenshots
// in web/test-results/ (a test artifact).
//
// Run by scripts/test-browser (make test-browser, part of make test), which installs
// Chromium and the npm packages when missing. Environment:
//   HOTLINE_BIN      the hotline binary (required)
//   CHROMIUM         the browser (default /usr/bin/chromium)
//   HOTLINE_ARTIFACTS where screenshots go (default web/test-results)

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.HOTLINE_ARTIFACTS ?? join(here, "..", "test-results");
/** Every wait in this test is bounded by this. */
const WAIT_MS = 15_000;
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Starts `hotline serve --web` on free ports; resolves to { child, url, stderr }. */
function startServer() {
  const bin = process.env.HOTLINE_BIN;
  assert.ok(bin, "set HOTLINE_BIN to the hotline binary (scripts/test-browser does)");
  const dataDir = mkdtempSync(join(tmpdir(), "hotline-browser-"));
  const child = spawn(
    bin,
    ["serve", "--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0", "--metrics-listen", "off", "--web", "--cores", "2", "--data-dir", dataDir],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server printed no page URL in time; stderr:\n${stderr}`)), 60_000);
    child.on("exit", (code) => reject(new Error(`the server exited (${code}); stderr:\n${stderr}`)));
    let url = null;
    createInterface({ input: child.stdout }).on("line", (line) => {
      const page = line.match(/^hotline web page at (\S+)/);
      if (page) url = page[1];
      if (line.startsWith("hotline listening on ") && url) {
        clearTimeout(timer);
        resolve({ child, url, dataDir, stderr: () => stderr });
      }
    });
  });
}

async function register(page, url, username) {
  await page.goto(url);
  await page.fill("#username", username);
  await page.fill("#password", `${username}-secret`);
  await page.click("#register-btn");
  await page.waitForSelector("#me[data-user-id]", { timeout: WAIT_MS });
  return page.getAttribute("#me", "data-user-id");
}

async function logIn(page, url, username) {
  await page.goto(url);
  await page.fill("#username", username);
  await page.fill("#password", `${username}-secret`);
  await page.click("#login-btn");
  await page.waitForSelector("#me[data-user-id]", { timeout: WAIT_MS });
}

/** Waits until the unread badge of the conversation with `peerId` reads `text`. */
async function waitForUnread(page, peerId, text) {
  const badge = page.locator(`.conv[data-peer="${peerId}"] .unread`);
  const deadline = Date.now() + WAIT_MS;
  let seen;
  while (Date.now() < deadline) {
    seen = (await badge.count()) > 0 ? await badge.textContent() : null;
    if (seen === text) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`unread badge for ${peerId}: wanted ${JSON.stringify(text)}, saw ${JSON.stringify(seen)}`);
}

async function sendTo(page, peerId, text) {
  if ((await page.locator(`.conv[data-peer="${peerId}"]`).count()) > 0) {
    await page.click(`.conv[data-peer="${peerId}"]`);
  } else {
    await page.fill("#new-peer", peerId);
    await page.click("#new-chat-btn");
  }
  await page.fill("#text", text);
  await page.click("#send-btn");
  await waitForText(page, text);
}

async function waitForText(page, text) {
  await page
    .locator("#messages li .text", { hasText: text })
    .first()
    .waitFor({ timeout: WAIT_MS });
}

test("two users chat in the browser, both ways; history survives a reload; read positions follow a user across devices", async (t) => {
  mkdirSync(artifacts, { recursive: true });
  const server = await startServer();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_FLAGS,
    timeout: 60_000,
  });
  t.after(async () => {
    await browser.close().catch(() => {});
    server.child.kill("SIGTERM");
    rmSync(server.dataDir, { recursive: true, force: true });
  });
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  const errors = [];
  // Script errors, and console errors (where Chromium reports what the page's
  // Content-Security-Policy refused: an inline style or script would land here).
  const watch = (page) => {
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  };
  for (const page of [alice, bob]) watch(page);

  const aliceId = await register(alice, server.url, "alice");
  // The stylesheet is a file of its own, allowed by the policy: it applied.
  const headerColor = await alice.evaluate(() => getComputedStyle(document.querySelector("header")).backgroundColor);
  assert.equal(headerColor, "rgb(31, 59, 87)", "app.css applied under the Content-Security-Policy");
  const bobId = await register(bob, server.url, "bob");
  assert.notEqual(aliceId, bobId);

  await sendTo(alice, bobId, "hello bob, from alice");
  // Bob sees a new conversation with an unread count, then the message in it.
  const conv = bob.locator(`.conv[data-peer="${aliceId}"]`);
  await conv.waitFor({ timeout: WAIT_MS });
  assert.equal(await conv.locator(".unread").textContent(), "1", "one unread message for bob");
  assert.equal(await conv.locator(".name").textContent(), "alice");
  await conv.click();
  await waitForText(bob, "hello bob, from alice");

  await sendTo(bob, aliceId, "hi alice, bob here");
  await alice.click(`.conv[data-peer="${bobId}"]`);
  await waitForText(alice, "hi alice, bob here");

  await alice.screenshot({ path: join(artifacts, "alice.png") });
  await bob.screenshot({ path: join(artifacts, "bob.png") });

  // A reload resumes the device by token and loads the history from the server.
  await alice.reload();
  await alice.waitForSelector(`.conv[data-peer="${bobId}"]`, { timeout: WAIT_MS });
  await alice.click(`.conv[data-peer="${bobId}"]`);
  await waitForText(alice, "hello bob, from alice");
  await waitForText(alice, "hi alice, bob here");
  const mine = await alice.locator("#messages li.mine .text").allTextContents();
  const theirs = await alice.locator("#messages li.theirs .text").allTextContents();
  assert.deepEqual(mine, ["hello bob, from alice"]);
  assert.deepEqual(theirs, ["hi alice, bob here"]);
  await alice.screenshot({ path: join(artifacts, "alice-after-reload.png") });

  // Read positions are the server's: bob's second device (a fresh browser, new device)
  // starts with nothing unread, since bob read the conversation on his first device...
  const bob2 = await (await browser.newContext()).newPage();
  watch(bob2);
  await logIn(bob2, server.url, "bob");
  await bob2.waitForSelector(`.conv[data-peer="${aliceId}"]`, { timeout: WAIT_MS });
  await waitForUnread(bob2, aliceId, "");
  // ...and a new message read on the first device (where the conversation is open) stops
  // counting as unread on the second one too (a ReadPosition push).
  await alice.fill("#text", "are you there, bob?");
  await alice.click("#send-btn");
  await waitForText(bob, "are you there, bob?");
  const seq = await bob
    .locator("#messages li", { hasText: "are you there, bob?" })
    .first()
    .getAttribute("data-seq");
  // bob2 holds the message (unread there until the push says otherwise)...
  await bob2.waitForSelector(`.conv[data-peer="${aliceId}"][data-last-seq="${seq}"]`, { timeout: WAIT_MS });
  await waitForUnread(bob2, aliceId, "");
  await bob2.screenshot({ path: join(artifacts, "bob-second-device.png") });
  assert.deepEqual(errors, [], "no script errors or refused resources on any page");
});
