// JupyterLab and VS Code in real sandboxes, in a real browser (Playwright
// driving Debian's chromium, headless), through the real build/nbgate with
// its embedded default: the `local` backend, the `jupyterlab` and `vscode`
// images from the machine-level image store (make images builds them).
//
//   log in through the form -> home page: profile "jupyterlab", Start ->
//   /user/alice/lab loads JupyterLab 4 -> Launcher: Python 3 notebook ->
//   type print(6*7), Shift+Enter -> "42" (kernel WebSocket through the
//   gateway) -> screenshot ->
//   home page: profile "vscode", server name "vscode", Start ->
//   /user/alice/vscode/ loads code-server (prefix stripped by the gateway,
//   its WebSocket passes code-server's Origin check) -> Quick Open a file
//   written in the home directory -> its text in the editor -> screenshot ->
//   Stop both from the home page: no sandbox process left.
//
// Steps depend on the ones before (one browser session); after a failure the
// rest are skipped with that reason. Every wait is bounded. Only loopback
// traffic: nbgate listens on 127.0.0.1:<free port>.
//
// Env: NBGATE, CHROMIUM, NBGATE_BROWSER_OUT, NBGATE_BROWSER_KEEP=1 (as
// newcomer.test.mjs), NBGATE_IMAGE_STORE (default: nbgate's own default).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor, pathOf, launchChromium } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const NBGATE = process.env.NBGATE || path.join(REPO, 'build', 'nbgate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.NBGATE_BROWSER_OUT || path.join(REPO, 'build', 'browser');
const KEEP = process.env.NBGATE_BROWSER_KEEP === '1';

const T_GATEWAY = 20000;   // nbgate answers /hub/health
const T_SPAWN = 120000;    // Start -> JupyterLab / code-server UI (2 shared cores)
const T_KERNEL = 90000;    // kernel started, cell executed
const T_STEP = 30000;      // ordinary page loads and clicks
const T_STOP = 30000;      // sandboxes gone after Stop

const S = {
	tmp: null, stateDir: null, port: 0, origin: '', proc: null, stdout: '', stderr: '',
	password: 'nb-' + randomBytes(12).toString('hex'), cfgPath: null,
	browser: null, ctx: null, page: null, app: null, failed: null, wsUrls: [],
};


/* Host pids of nbgate-init shims (and their trees) that belong to our state
 * dir: the shim's argv names the spec under <state>/run/. */
function sandboxPids() {
	const pids = [];
	for (const ent of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(ent))
			continue;
		let cmd;
		try {
			cmd = fs.readFileSync(`/proc/${ent}/cmdline`, 'utf8');
		} catch {
			continue;
		}
		if (S.stateDir && cmd.includes(S.stateDir + '/run/'))
			pids.push(Number(ent));
	}
	return pids;
}

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
			const tag = name.split(':')[0].replace(/[^a-z0-9]+/gi, '-');
			if (S.page)
				await S.page.screenshot({ path: path.join(OUT, `sandbox-failure-${tag}-home.png`) }).catch(() => {});
			if (S.app)
				await S.app.screenshot({ path: path.join(OUT, `sandbox-failure-${tag}-app.png`) }).catch(() => {});
			t.diagnostic(`nbgate stderr tail:\n${S.stderr.slice(-4000)}`);
			for (const f of ['alice', 'alice-vscode']) {
				const log = path.join(S.stateDir, 'run', f, 'server.log');
				if (fs.existsSync(log))
					t.diagnostic(`${log} tail:\n${fs.readFileSync(log, 'utf8').slice(-3000)}`);
			}
			throw e;
		}
	});
}


function nbgateCli(args, input) {
	const r = spawnSync(NBGATE, ['--config', S.cfgPath, ...args], { input, encoding: 'utf8', timeout: 30000 });
	assert.equal(r.status, 0, `nbgate ${args.join(' ')}: ${r.stderr}`);
	return r.stdout;
}

before(async () => {
	assert.ok(fs.existsSync(NBGATE), `nbgate binary not found at ${NBGATE} (make all)`);
	assert.ok(fs.existsSync(CHROMIUM), `chromium not found at ${CHROMIUM}`);
	fs.mkdirSync(OUT, { recursive: true });
	for (const f of ['jupyterlab.png', 'vscode.png'])
		fs.rmSync(path.join(OUT, f), { force: true });
	// short: socket paths under <state>/run/<slug>/ must fit in sun_path
	S.tmp = fs.mkdtempSync('/tmp/nbs.');
	S.stateDir = path.join(S.tmp, 's');
	fs.mkdirSync(S.stateDir, { mode: 0o700 });
	S.port = await freePort();
	S.origin = `http://127.0.0.1:${S.port}`;
	// the embedded default: no spawner key, default profiles
	const cfg = { listen: `127.0.0.1:${S.port}`, state_dir: S.stateDir, spawn_timeout: '120s' };
	S.cfgPath = path.join(S.tmp, 'nbgate.json');
	fs.writeFileSync(S.cfgPath, JSON.stringify(cfg, null, 1));
	nbgateCli(['user', 'add', 'alice', '--password-stdin'], S.password + '\n');
	const env = { ...process.env };
	for (const k of Object.keys(env))
		if (k.startsWith('NBGATE_') && k !== 'NBGATE_IMAGE_STORE')
			delete env[k];
	S.proc = spawn(NBGATE, ['serve', '--config', S.cfgPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
	S.proc.stdout.setEncoding('utf8').on('data', (d) => { S.stdout += d; });
	S.proc.stderr.setEncoding('utf8').on('data', (d) => { S.stderr += d; });
	const up = await waitFor(async () => {
		if (S.proc.exitCode !== null)
			return 'exited';
		try {
			const r = await fetch(`${S.origin}/hub/health`);
			return r.ok;
		} catch {
			return false;
		}
	}, T_GATEWAY, 100);
	assert.ok(up === true, `nbgate did not come up (exit ${S.proc.exitCode}):\n${S.stderr.slice(-3000)}`);
	S.browser = await launchChromium(CHROMIUM, T_STEP);
	S.ctx = await S.browser.newContext({ viewport: { width: 1400, height: 900 } });
	S.ctx.setDefaultTimeout(T_STEP);
	S.page = await S.ctx.newPage();
});

after(async () => {
	if (S.browser)
		await S.browser.close().catch(() => {});
	if (S.proc && S.proc.exitCode === null) {
		// stop the servers too: a failed run must not leave sandboxes behind
		S.proc.kill('SIGTERM');
		if (!(await waitFor(() => S.proc.exitCode !== null || S.proc.signalCode !== null, 15000, 100)))
			S.proc.kill('SIGKILL');
	}
	const left = sandboxPids();
	for (const p of left) {
		try { process.kill(p, 'SIGTERM'); } catch { /* gone */ }
	}
	if (left.length && !(await waitFor(() => sandboxPids().length === 0, 10000, 100)))
		for (const p of sandboxPids()) {
			try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
		}
	await waitFor(() => sandboxPids().length === 0, 5000, 100);
	if (S.tmp && !KEEP)
		fs.rmSync(S.tmp, { recursive: true, force: true });
	else if (S.tmp)
		console.log(`# kept ${S.tmp}`);
});

/* Starts a server from the home page's spawn form; resolves when the
 * browser has navigated to urlPrefix (app.js opens the server when ready). */
async function startFromHome(profile, serverName, urlPrefix) {
	const page = S.page;
	await page.goto(`${S.origin}/hub/home`);
	const form = page.locator('form.spawn');
	await form.locator('select[name="profile"]').selectOption(profile);
	if (serverName)
		await form.locator('input[name="server"]').fill(serverName);
	await Promise.all([
		page.waitForURL((u) => pathOf(u.href).startsWith(urlPrefix), { timeout: T_SPAWN }),
		form.locator('button[type="submit"]').click(),
	]);
}

step('log in through the form: /hub/home with a profile choice', T_STEP * 2, async () => {
	const page = S.page;
	await page.goto(`${S.origin}/hub/login`);
	await page.locator('input[name="username"]').fill('alice');
	await page.locator('input[name="password"]').fill(S.password);
	await Promise.all([
		page.waitForURL((u) => pathOf(u.href) === '/hub/home'),
		page.locator('form[action="/hub/login"] button[type="submit"]').click(),
	]);
	const values = await page.locator('form.spawn select[name="profile"] option').evaluateAll(
		(os) => os.map((o) => o.value));
	assert.ok(values.includes('jupyterlab') && values.includes('vscode'),
		`the spawn form offers the jupyterlab and vscode profiles: ${values}`);
});

step('Start "jupyterlab" from the home page: JupyterLab 4 loads at /user/alice/lab', T_SPAWN + T_STEP, async () => {
	await startFromHome('jupyterlab', '', '/user/alice/lab');
	const page = S.page;
	S.app = page;
	page.on('websocket', (ws) => S.wsUrls.push(ws.url()));
	await page.locator('#jp-main-dock-panel').waitFor({ timeout: T_SPAWN });
	await page.locator('.jp-LauncherCard').first().waitFor({ timeout: T_SPAWN });
	const st = await page.evaluate(async () => (await fetch('/hub/api/users/alice')).json());
	assert.equal(st.servers[''].ready, true, `API: default server ready: ${JSON.stringify(st.servers)}`);
});

step('a notebook runs print(6*7) and shows 42 over the kernel WebSocket', T_KERNEL * 2, async () => {
	const page = S.page;
	// the Notebook section's Python 3 card of the Launcher
	const card = page.locator('.jp-LauncherCard[data-category="Notebook"]').first();
	await card.click();
	const editor = page.locator('.jp-NotebookPanel .jp-Cell .cm-content').first();
	await editor.waitFor({ timeout: T_KERNEL });
	// JupyterLab drops a run requested before its kernel connection is up
	// (seen in CI: the cell stayed "[ ]"); the status bar says
	// "Python 3 (ipykernel) | Idle" once the kernel answers
	await page.locator('#jp-main-statusbar', { hasText: /\| Idle/ }).waitFor({ timeout: T_KERNEL });
	await editor.click();
	await page.keyboard.type('print(6*7)');
	await page.keyboard.press('Shift+Enter');
	const out = page.locator('.jp-OutputArea-output', { hasText: '42' }).first();
	await out.waitFor({ timeout: T_KERNEL });
	assert.equal((await out.textContent()).trim(), '42');
	const kernelWs = S.wsUrls.filter((u) =>
		new RegExp(`^ws://127\\.0\\.0\\.1:${S.port}/user/alice/api/kernels/[0-9a-f-]+/channels`).test(u));
	assert.ok(kernelWs.length >= 1, `a kernel channels WebSocket went through the gateway: ${JSON.stringify(S.wsUrls)}`);
	await page.screenshot({ path: path.join(OUT, 'jupyterlab.png') });
});

step('a file written in the home directory (contents API) is there for VS Code', T_STEP, async () => {
	const status = await S.page.evaluate(async () => {
		const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || '';
		const r = await fetch('/user/alice/api/contents/hello_nbgate.py', {
			method: 'PUT', headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf },
			body: JSON.stringify({ type: 'file', format: 'text', content: 'print("hello from nbgate")\n' }),
		});
		return r.status;
	});
	assert.ok(status === 200 || status === 201, `contents PUT answered ${status}`);
});

step('Start "vscode" named vscode from the home page: code-server loads at /user/alice/vscode/', T_SPAWN + T_STEP, async () => {
	S.app = null;
	await startFromHome('vscode', 'vscode', '/user/alice/vscode');
	const page = S.page;
	S.app = page;
	assert.equal(pathOf(page.url()).startsWith('/user/alice/vscode/'), true, `at ${page.url()}`);
	await page.locator('.monaco-workbench').waitFor({ timeout: T_SPAWN });
	// the workbench's own WebSocket (code-server's origin check passed)
	await page.locator('.statusbar').waitFor({ timeout: T_SPAWN });
	const bare = await page.evaluate(async () => {
		const r = await fetch('/user/alice/vscode', { redirect: 'manual' });
		return r.type === 'opaqueredirect' || (r.status >= 300 && r.status < 400);
	});
	assert.ok(bare, 'the bare prefix /user/alice/vscode redirects');
});

step('VS Code opens hello_nbgate.py from the home directory (same home as JupyterLab)', T_STEP * 3, async () => {
	const page = S.page;
	// the Explorer lists the workspace folder (the user's home) through
	// code-server's WebSocket; a click opens the file in an editor tab
	const item = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'hello_nbgate.py' }).first();
	await item.waitFor({ timeout: T_STEP });
	await item.click();
	await page.locator('.monaco-editor .view-lines', { hasText: 'hello from nbgate' }).first()
		.waitFor({ timeout: T_STEP });
	const tab = page.locator('.tabs-container .tab', { hasText: 'hello_nbgate.py' });
	assert.ok(await tab.count() >= 1, 'an editor tab for hello_nbgate.py');
	await page.screenshot({ path: path.join(OUT, 'vscode.png') });
});

step('Stop both servers from the home page: no sandbox process left', T_STOP * 2, async () => {
	S.app = null;
	const page = S.page;
	await page.goto(`${S.origin}/hub/home`);
	const stops = page.locator('button[data-action="stop"]');
	const n = await stops.count();
	assert.ok(n >= 2, `two server rows with Stop: ${n}`);
	for (let i = 0; i < n; i++)
		await stops.nth(i).click();
	const stopped = await waitFor(async () => {
		const j = await page.evaluate(async () => (await fetch('/hub/api/users/alice')).json());
		return Object.keys(j.servers).length === 0;
	}, T_STOP, 300);
	assert.ok(stopped, 'the API shows no live server after Stop');
	const gone = await waitFor(() => sandboxPids().length === 0, T_STOP, 200);
	assert.ok(gone, `sandbox processes left: ${sandboxPids()}`);
});
