// A newcomer's path through nbgate in a real browser (Playwright driving
// Debian's chromium, headless), against the real build/nbgate spawning
// Jupyter's classic Notebook 6.4 with the `process` spawner:
//
//   one-time setup URL from stdout -> set the admin password (form) ->
//   /hub/home -> Start (progress stream) -> /user/admin/tree (notebook UI) ->
//   New > Python 3 -> run `1+1` -> "2" (kernel WebSocket through the gateway,
//   Origin checked) -> screenshot -> log out -> /user/admin/tree goes to the
//   login page -> log in again through the form -> Stop -> no processes left.
// Plus: a fresh browser context without cookies gets the login page.
//
// Steps depend on the ones before (one browser session); a failed step
// makes the later ones fail with "skipped: an earlier step failed".
//
// Env: NBGATE (binary, default <repo>/build/nbgate), CHROMIUM (default
// /usr/bin/chromium), NBGATE_BROWSER_OUT (screenshots, default
// <repo>/build/browser), NBGATE_BROWSER_KEEP=1 keeps the temp dir.
// Only loopback traffic: nbgate listens on 127.0.0.1:<free port>.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor, pathOf, launchChromium } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const NBGATE = process.env.NBGATE || path.join(REPO, 'build', 'nbgate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.NBGATE_BROWSER_OUT || path.join(REPO, 'build', 'browser');
const KEEP = process.env.NBGATE_BROWSER_KEEP === '1';

// Timeouts (ms): every wait is bounded.
const T_GATEWAY = 20000;   // nbgate prints the setup URL and answers /hub/health
const T_SPAWN = 90000;     // Start -> notebook tree page (python startup on 2 cores)
const T_KERNEL = 60000;    // kernel started and idle, cell executed
const T_STEP = 20000;      // ordinary page loads and clicks
const T_STOP = 30000;      // server and kernel processes gone after Stop

const S = {
	tmp: null, stateDir: null, port: 0, origin: '', proc: null, stdout: '', stderr: '',
	setupUrl: null, password: 'nb-' + randomBytes(12).toString('hex'),
	browser: null, ctx: null, page: null, nbPage: null, failed: null, wsUrls: [],
};


/* Pids whose command line mentions dir: the spawned notebook server (its
 * --NotebookApp.sock is under the state dir) and its kernels (their
 * connection files are under the run dir). nbgate's own argv names the
 * config file, also under dir: leftoverPids() leaves it out. */
function pidsUnder(dir) {
	const pids = [];
	for (const ent of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(ent) || Number(ent) === process.pid)
			continue;
		let cmd;
		try {
			cmd = fs.readFileSync(`/proc/${ent}/cmdline`, 'utf8');
		} catch {
			continue; // exited meanwhile
		}
		if (cmd.includes(dir))
			pids.push(Number(ent));
	}
	return pids;
}

function leftoverPids() {
	if (!S.tmp)
		return [];
	const own = S.proc && S.proc.exitCode === null ? S.proc.pid : -1;
	return pidsUnder(S.tmp).filter((p) => p !== own);
}

function killPids(pids, sig) {
	for (const p of pids) {
		try {
			process.kill(p, sig);
		} catch { /* already gone */ }
	}
}

/* Fails the step at once when an earlier one failed (shared browser state). */
function step(name, timeout, fn) {
	test(name, { timeout }, async (t) => {
		if (S.failed) {
			t.skip(`skipped: an earlier step failed (${S.failed})`);
			return;
		}
		try {
			await fn(t);
		} catch (e) {
			S.failed = name;
			if (S.page)
				await S.page.screenshot({ path: path.join(OUT, 'failure-home.png') }).catch(() => {});
			if (S.nbPage)
				await S.nbPage.screenshot({ path: path.join(OUT, 'failure-notebook.png') }).catch(() => {});
			t.diagnostic(`nbgate stderr tail:\n${S.stderr.slice(-3000)}`);
			throw e;
		}
	});
}


before(async () => {
	assert.ok(fs.existsSync(NBGATE), `nbgate binary not found at ${NBGATE} (make all, or set NBGATE)`);
	assert.ok(fs.existsSync(CHROMIUM), `chromium not found at ${CHROMIUM} (apt-get install chromium)`);
	fs.mkdirSync(OUT, { recursive: true });
	for (const f of ['notebook.png', 'failure-home.png', 'failure-notebook.png'])
		fs.rmSync(path.join(OUT, f), { force: true }); // no stale pictures from an earlier run
	// short: the server's unix socket path (<state>/run/<slug>/server.sock)
	// must fit in sun_path (107 bytes)
	S.tmp = fs.mkdtempSync('/tmp/nbb.');
	S.stateDir = path.join(S.tmp, 's');
	fs.mkdirSync(S.stateDir, { mode: 0o700 });
	S.port = await freePort();
	S.origin = `http://127.0.0.1:${S.port}`;
	const cfg = {
		listen: `127.0.0.1:${S.port}`,
		state_dir: S.stateDir,
		spawner: 'process',
		spawn_timeout: '60s',
		server_cmd: ['/usr/bin/python3', '-m', 'notebook', '--NotebookApp.sock={sock}',
			'--NotebookApp.base_url={base_url}', '--NotebookApp.token=',
			'--NotebookApp.password=', '--NotebookApp.disable_check_xsrf=True',
			'--NotebookApp.allow_remote_access=True', '--no-browser', '--allow-root',
			'--NotebookApp.notebook_dir={home}'],
	};
	const cfgPath = path.join(S.tmp, 'nbgate.json');
	fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 1));
	const env = { ...process.env };
	for (const k of Object.keys(env))
		if (k.startsWith('NBGATE_'))
			delete env[k];
	S.proc = spawn(NBGATE, ['serve', '--config', cfgPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
	S.proc.stdout.setEncoding('utf8').on('data', (d) => { S.stdout += d; });
	S.proc.stderr.setEncoding('utf8').on('data', (d) => { S.stderr += d; });
	const code = await waitFor(() => {
		if (S.proc.exitCode !== null)
			return 'exited';
		const m = /(https?:\/\/\S+\/hub\/setup\?code=[A-Za-z0-9_%-]+)/.exec(S.stdout + S.stderr);
		return m ? m[1] : null;
	}, T_GATEWAY, 50);
	assert.ok(code && code !== 'exited',
		`no setup URL from nbgate (exit ${S.proc.exitCode}); stdout:\n${S.stdout}\nstderr:\n${S.stderr.slice(-3000)}`);
	S.setupUrl = code;
	S.browser = await launchChromium(CHROMIUM, T_STEP);
	S.ctx = await S.browser.newContext({ viewport: { width: 1280, height: 900 } });
	S.ctx.setDefaultTimeout(T_STEP);
	S.page = await S.ctx.newPage();
});

after(async () => {
	if (S.browser)
		await S.browser.close().catch(() => {});
	if (S.proc && S.proc.exitCode === null) {
		S.proc.kill('SIGTERM');
		const gone = await waitFor(() => S.proc.exitCode !== null || S.proc.signalCode !== null, 5000, 50);
		if (!gone)
			S.proc.kill('SIGKILL');
	}
	// nbgate deliberately leaves servers running across its own restarts:
	// kill whatever a failed run left behind, found by our temp dir.
	const left = leftoverPids();
	if (left.length) {
		killPids(left, 'SIGTERM');
		if (!(await waitFor(() => leftoverPids().length === 0, 5000, 100)))
			killPids(leftoverPids(), 'SIGKILL');
	}
	if (S.tmp && !KEEP)
		fs.rmSync(S.tmp, { recursive: true, force: true });
	else if (S.tmp)
		console.log(`# kept ${S.tmp}`);
});

step('setup URL: sets the admin password and lands signed in on /hub/home', T_STEP * 2, async () => {
	assert.equal(new URL(S.setupUrl).origin, S.origin, 'setup URL uses the listen address');
	const page = S.page;
	const r = await page.goto(S.setupUrl);
	assert.equal(r.status(), 200, 'setup page answers 200');
	await page.locator('form[action="/hub/setup"] input[name="password"]').fill(S.password);
	await Promise.all([
		page.waitForURL((u) => pathOf(u.href) === '/hub/home', { timeout: T_STEP }),
		page.locator('form[action="/hub/setup"] button[type="submit"]').click(),
	]);
	await assert.doesNotReject(page.locator('nav .who', { hasText: 'admin' }).waitFor(),
		'home page shows the signed-in user in the navigation');
	assert.equal(await page.locator('button[data-action="start"]').count(), 1, 'one Start button (default server)');
	// the link is single-use: the same form again, in a fresh context, is refused
	const ctx = await S.browser.newContext();
	try {
		const p2 = await ctx.newPage();
		p2.setDefaultTimeout(T_STEP);
		await p2.goto(S.setupUrl);
		await p2.locator('input[name="password"]').fill(S.password + 'x');
		const [resp] = await Promise.all([
			p2.waitForResponse((res) => pathOf(res.url()) === '/hub/setup' && res.request().method() === 'POST'),
			p2.locator('form[action="/hub/setup"] button[type="submit"]').click(),
		]);
		assert.equal(resp.status(), 403, 'a used setup link is refused');
		assert.ok(!(await ctx.cookies(S.origin)).some((c) => c.name === 'nbgate-session'), 'and signs nobody in');
	} finally {
		await ctx.close();
	}
});

step('Start: progress stream finishes and the browser opens /user/admin/ (notebook tree)', T_SPAWN + T_STEP, async () => {
	const page = S.page;
	await page.locator('button[data-action="start"]').click();
	// app.js follows the progress EventSource and navigates to the server's
	// URL on the ready event; the notebook redirects / to /tree
	await page.waitForURL((u) => pathOf(u.href).startsWith('/user/admin/tree'), { timeout: T_SPAWN });
	await page.locator('#notebook_list').waitFor({ timeout: T_STEP });
	await page.locator('#new-dropdown-button').waitFor();
	assert.match(await page.title(), /Home|Jupyter/i, 'classic notebook tree page title');
	const st = await page.evaluate(async () => (await fetch('/hub/api/users/admin')).json());
	assert.equal(st.servers[''].ready, true, `API says the default server is ready: ${JSON.stringify(st)}`);
});

step('New > Python 3 opens a notebook; 1+1 gives 2 over the kernel WebSocket', T_KERNEL * 2, async () => {
	const page = S.page;
	await page.locator('#new-dropdown-button').click();
	const item = page.locator('#kernel-python3 a');
	await item.waitFor();
	// the classic UI opens the new notebook in a new window (window.open)
	const [nb] = await Promise.all([S.ctx.waitForEvent('page', { timeout: T_STEP }), item.click()]);
	S.nbPage = nb;
	nb.setDefaultTimeout(T_STEP);
	nb.on('websocket', (ws) => S.wsUrls.push(ws.url()));
	await nb.waitForURL((u) => /^\/user\/admin\/notebooks\/Untitled.*\.ipynb$/.test(pathOf(u.href)), { timeout: T_STEP });
	await nb.locator('#kernel_indicator_icon.kernel_idle_icon').waitFor({ timeout: T_KERNEL });
	const cell = nb.locator('.cell.code_cell').first();
	await cell.locator('.CodeMirror').click();
	await nb.keyboard.type('1+1');
	await nb.keyboard.press('Shift+Enter');
	const out = cell.locator('.output_area .output_subarea');
	await out.first().waitFor({ timeout: T_KERNEL });
	await assert.doesNotReject(
		nb.waitForFunction((el) => el && el.textContent.trim() === '2', await out.first().elementHandle(), { timeout: T_KERNEL }),
		'the output area shows 2');
	assert.equal((await cell.locator('.output_prompt').first().textContent()).replace(/\s+/g, ''), 'Out[1]:');
	const kernelWs = S.wsUrls.filter((u) => /^ws:\/\/127\.0\.0\.1:\d+\/user\/admin\/api\/kernels\/[0-9a-f-]+\/channels/.test(u));
	assert.ok(kernelWs.length >= 1, `a kernel channels WebSocket went through the gateway: ${JSON.stringify(S.wsUrls)}`);
	assert.ok(kernelWs.every((u) => u.startsWith(`ws://127.0.0.1:${S.port}/`)), 'on the gateway port');
	// save it (contents API PUT through the gateway) and check it exists
	await nb.keyboard.press('Control+s');
	const name = decodeURIComponent(pathOf(nb.url()).split('/').pop());
	const saved = await waitFor(async () => {
		const j = await nb.evaluate(async (n) => {
			const r = await fetch('/user/admin/api/contents/' + encodeURIComponent(n) + '?content=1');
			return r.ok ? r.json() : null;
		}, name);
		return j && JSON.stringify(j.content?.cells?.[0]?.outputs || []).includes('"text/plain":"2"') ? j : null;
	}, T_STEP, 300);
	assert.ok(saved, `the saved notebook ${name} has the output 2 (contents API through the gateway)`);
	fs.mkdirSync(OUT, { recursive: true });
	await nb.screenshot({ path: path.join(OUT, 'notebook.png'), fullPage: true });
});

step('a browser context without cookies gets the login page for /user/admin/tree', T_STEP * 2, async () => {
	const ctx = await S.browser.newContext();
	try {
		const page = await ctx.newPage();
		page.setDefaultTimeout(T_STEP);
		const r = await page.goto(`${S.origin}/user/admin/tree`);
		assert.equal(pathOf(page.url()), '/hub/login', `landed on ${page.url()}`);
		assert.equal(r.status(), 200);
		await page.locator('form[action="/hub/login"] input[name="username"]').waitFor();
		// not even the API answers without a session
		const api = await page.evaluate(async () => (await fetch('/user/admin/api/contents')).status);
		assert.ok(api === 403 || api === 401 || api === 302, `anonymous API call refused (got ${api})`);
	} finally {
		await ctx.close();
	}
});

step('log out: /user/admin/tree then redirects to /hub/login (server still running)', T_STEP * 2, async () => {
	if (S.nbPage) {
		await S.nbPage.close();
		S.nbPage = null;
	}
	const page = S.page;
	await page.goto(`${S.origin}/hub/home`);
	await page.locator('nav a[href="/hub/logout"]').click();
	await page.waitForURL((u) => pathOf(u.href) === '/hub/logout');
	await Promise.all([
		page.waitForURL((u) => pathOf(u.href) === '/hub/login'),
		page.locator('form[action="/hub/logout"] button[type="submit"]').click(),
	]);
	const cookies = await S.ctx.cookies(S.origin);
	assert.ok(!cookies.some((c) => c.name === 'nbgate-session' && c.value), `session cookie cleared: ${cookies.map((c) => c.name)}`);
	await page.goto(`${S.origin}/user/admin/tree`);
	assert.equal(pathOf(page.url()), '/hub/login', `after logout /user/admin/tree lands on ${page.url()}`);
	await page.locator('form[action="/hub/login"] input[name="username"]').waitFor();
	assert.ok(leftoverPids().length > 0, 'the notebook server kept running (logout is not stop)');
});

step('log in again through the form, Stop the server: no server or kernel process left', T_STEP + T_STOP + 5000, async () => {
	const page = S.page;
	await page.goto(`${S.origin}/hub/login`);
	await page.locator('input[name="username"]').fill('admin');
	await page.locator('input[name="password"]').fill(S.password);
	await Promise.all([
		page.waitForURL((u) => pathOf(u.href) === '/hub/home'),
		page.locator('form[action="/hub/login"] button[type="submit"]').click(),
	]);
	const state = page.locator('td.state').first();
	assert.equal((await state.textContent()).trim(), 'running', 'home shows the server running');
	await page.locator('button[data-action="stop"]').click();
	await page.waitForFunction(() => /stopping|stopped/.test(document.querySelector('td.state').textContent), null);
	const stopped = await waitFor(async () => {
		const j = await page.evaluate(async () => (await fetch('/hub/api/users/admin')).json());
		return Object.keys(j.servers).length === 0 && j.server === null && j.pending === null;
	}, T_STOP, 300);
	assert.ok(stopped, 'the API shows no live server after Stop');
	const gone = await waitFor(() => leftoverPids().length === 0, T_STOP, 200);
	assert.ok(gone, `processes left in the run dir: ${leftoverPids()}`);
	await page.goto(`${S.origin}/user/admin/tree`);
	assert.match(await page.locator('main h1').textContent(), /Server not running/);
});
