// Opening a repository from the home page: the repository and branch typed there are
// cloned into the new conversation's workspace before the agent is ready.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { api, conversationIdFromUrl, eventually, launchBrowser, screenshot, startServer, tempDir } from "./harness.mjs";

let srv;
let browser;

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

/** A repository with a `dev` branch that holds DEV.txt. */
function origin() {
  const repo = path.join(tempDir("ohs-repo-"), "sample-project");
  fs.mkdirSync(repo, { recursive: true });
  const git = (...args) => execFileSync("git", ["-C", repo, "-c", "user.email=a@b", "-c", "user.name=n", ...args]);
  git("init", "-q", "-b", "main");
  fs.writeFileSync(path.join(repo, "README.md"), "hello\n");
  git("add", "-A");
  git("commit", "-qm", "init");
  git("checkout", "-qb", "dev");
  fs.writeFileSync(path.join(repo, "DEV.txt"), "dev\n");
  git("add", "-A");
  git("commit", "-qm", "dev");
  git("checkout", "-q", "main");
  return repo;
}

test("a repository and branch typed on the home page are cloned into the new conversation", async () => {
  const repo = origin();
  const page = await browser.context.newPage();
  await page.goto(`${srv.url}/`);
  await page.fill("[data-testid=new-repository]", repo);
  await page.fill("[data-testid=new-branch]", "dev");
  await page.click("[data-testid=start-empty]");
  await page.waitForURL(/\/conversations\/[0-9a-f]+$/);
  const cid = conversationIdFromUrl(page.url());
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
  const info = (await api(srv.url, "GET", `/api/conversations/${cid}`)).data;
  assert.equal(info.selected_repository, repo);
  assert.equal(info.selected_branch, "dev");
  // The clone is in the workspace, on dev, and the terminal sees it.
  await eventually(async () => {
    const r = await api(srv.url, "GET", `/api/conversations/${cid}/list-files?path=sample-project`);
    return r.status === 200 && JSON.stringify(r.data).includes("DEV.txt");
  }, { timeout: 20_000, label: "the clone's files" });
  await page.locator("[data-testid=terminal-input]").fill("git -C sample-project branch --show-current");
  await page.locator("[data-testid=terminal-input]").press("Enter");
  await page.waitForSelector("[data-testid=terminal-entry] .t-out:has-text('dev')");
  await screenshot(page, "repository-opened");
  await page.close();
});
