// Drives Debian's Chromium for signpost's browser tests (see tests/common/browser.rs).
//
//   node drive.mjs STEPS.json
//
// STEPS.json: { "pacUrl": "...", "userDataDir": "...", "steps": [ ... ] }, each step one of
//   { "goto": url }                 loads the page (until `load`)
//   { "expectText": "substring" }   waits up to 15 s for the body's innerText to contain it
//   { "click": selector }           a Playwright selector ("text=Continue"); waits for the
//                                   navigation the click causes, if any, to load
//   { "fill": [selector, value] }
//   { "screenshot": path }
//
// Prints one JSON line per step, {"step", "ok", "url", "error"} (and "status" for the main
// document after goto/click when there is one), and stops at the first failure with exit
// code 1 (2: bad input or Chromium did not start; 3: the run took over 50 s; 143: SIGTERM).
// The browser is always closed. The PAC URL is Chromium's only proxy setting, so
// every request is routed exactly as a real browser given that URL routes it. Chromium
// reads trusted certificates from $HOME/.pki/nssdb: the caller sets HOME.

import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const STEP_TIMEOUT_MS = 15_000;
// The whole run; the Rust side kills us a little later as a backstop.
const RUN_TIMEOUT_MS = 50_000;
// How long after a click a navigation may take to start before we call it "no navigation".
const CLICK_NAVIGATION_GRACE_MS = 1_000;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// Playwright's messages carry terminal colours and a call log; keep them readable in JSON.
function message(err) {
  const text = String(err && err.message ? err.message : err).replace(/\x1b\[[0-9;]*m/g, '');
  return text.split('\n').slice(0, 12).join('\n').trimEnd();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function bodyText(page) {
  try {
    return await page.evaluate(() => (document.body ? document.body.innerText : ''));
  } catch {
    return null; // mid-navigation: the execution context went away
  }
}

async function expectText(page, want) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let last = null;
  for (;;) {
    const text = await bodyText(page);
    if (text !== null) {
      last = text;
      if (text.includes(want)) return;
    }
    if (Date.now() >= deadline) break;
    await sleep(100);
  }
  const shown = last === null ? '(no body)' : JSON.stringify(last.slice(0, 2000));
  throw new Error(`text ${JSON.stringify(want)} not found within ${STEP_TIMEOUT_MS} ms; body: ${shown}`);
}

async function clickAndSettle(page, selector) {
  let navigation = null;
  const onRequest = (request) => {
    if (!navigation && request.isNavigationRequest() && request.frame() === page.mainFrame()) {
      navigation = request;
    }
  };
  page.on('request', onRequest);
  // Armed before the click so that a fast navigation is not missed.
  const committed = page
    .waitForEvent('framenavigated', {
      predicate: (frame) => frame === page.mainFrame(),
      timeout: STEP_TIMEOUT_MS,
    })
    .catch(() => null);
  try {
    await page.click(selector, { timeout: STEP_TIMEOUT_MS });
    const grace = Date.now() + CLICK_NAVIGATION_GRACE_MS;
    while (!navigation && Date.now() < grace) await sleep(20);
    if (!navigation) return null; // the click did not navigate
    const response = await navigation.response();
    const failure = navigation.failure();
    if (failure) {
      throw new Error(`the navigation to ${navigation.url()} started by the click failed: ${failure.errorText}`);
    }
    if (!(await committed)) {
      throw new Error(`the navigation to ${navigation.url()} started by the click did not commit`);
    }
    await page.waitForLoadState('load', { timeout: STEP_TIMEOUT_MS });
    return response;
  } finally {
    page.off('request', onRequest);
  }
}

async function runStep(page, step) {
  if ('goto' in step) {
    return page.goto(step.goto, { waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
  }
  if ('expectText' in step) {
    await expectText(page, step.expectText);
    return null;
  }
  if ('click' in step) {
    return clickAndSettle(page, step.click);
  }
  if ('fill' in step) {
    const [selector, value] = step.fill;
    await page.fill(selector, value, { timeout: STEP_TIMEOUT_MS });
    return null;
  }
  if ('screenshot' in step) {
    await page.screenshot({ path: step.screenshot, fullPage: true, timeout: STEP_TIMEOUT_MS });
    return null;
  }
  throw new Error(`unknown step ${JSON.stringify(step)}`);
}

async function main() {
  const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const { pacUrl, userDataDir, steps } = input;
  if (!pacUrl || !userDataDir || !Array.isArray(steps)) {
    throw new Error('input needs pacUrl, userDataDir and steps');
  }
  // A persistent context because Playwright refuses --user-data-dir in args; the directory
  // is the caller's fresh one.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
      `--proxy-pac-url=${pacUrl}`,
    ],
    env: { ...process.env },
    timeout: STEP_TIMEOUT_MS,
  });
  // Closing the browser is bounded too: a wedged Chromium is left to Playwright's own
  // process-exit cleanup, which kills it.
  const stop = (why, code) => {
    process.stderr.write(`drive.mjs: ${why}; closing the browser\n`);
    Promise.race([context.close(), sleep(5_000)]).finally(() => process.exit(code));
  };
  const watchdog = setTimeout(() => stop(`the run took over ${RUN_TIMEOUT_MS} ms`, 3), RUN_TIMEOUT_MS);
  process.once('SIGTERM', () => stop('SIGTERM', 143));
  let failed = false;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    for (let i = 0; i < steps.length; i++) {
      const line = { step: i, ok: true, url: '', error: null };
      try {
        const response = await runStep(page, steps[i]);
        if (response) line.status = response.status();
      } catch (err) {
        line.ok = false;
        line.error = message(err);
      }
      line.url = page.url();
      emit(line);
      if (!line.ok) {
        failed = true;
        break;
      }
    }
  } finally {
    clearTimeout(watchdog);
    await context.close();
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`drive.mjs: ${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
  },
);
