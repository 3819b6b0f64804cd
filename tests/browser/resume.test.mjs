// A real browser across a CRIU checkpoint (issue 4): Playwright driving
// Debian's chromium (headless) against the real build/nbgate with its
// embedded default (the sandboxed `local` backend, the `jupyterlab` image
// from the machine-level store, the patched CRIU at criu_path).
//
//   log in as rhea -> Start "jupyterlab" -> a notebook: x = 6*7 and a
//   10M-element numpy array -> screenshot ->
//   POST .../server/checkpoint {"mode": "criu"} (an API token made with the
//   CLI) with the page open and untouched: the gateway closes the kernel
//   WebSocket for the dump; JupyterLab reconnects and keeps polling, and
//   those requests wait at the gateway WITHOUT resuming the server (the
//   culling case: a tab left open) -> "suspended" stays, no sandbox
//   process -> the home page says "suspended" -> the user comes back: a
//   second tab opens /user/rhea/lab: "Resuming your server", then JupyterLab
//   by itself, same kernel id, its notebook runs print(x * 2, int(a[-1]))
//   -> "84 9999999" -> the FIRST tab, never reloaded, has reconnected by
//   itself: print(x, int(a.sum())) -> "42 49999995000000" -> Stop: no
//   sandbox process.
//
// Steps depend on the ones before (one browser session); after a failure the
// rest are skipped with that reason. Every wait is bounded. Only loopback
// traffic: nbgate listens on 127.0.0.1:<free port>. The user is "rhea":
// cgroup names are global, other tests use alice, bob and cora.
//
// Env: NBGATE, CHROMIUM, NBGATE_BROWSER_OUT, NBGATE_BROWSER_KEEP=1 (as
// sandbox.test.mjs), NBGATE_IMAGE_STORE (default: nbgate's own default),
// NBGATE_CRIU_PATH (default /usr/local/sbin/criu, nbgate's default).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor, pathOf, launchChromium, sleep } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const NBGATE = process.env.NBGATE || path.join(REPO, 'build', 'nbgate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.NBGATE_BROWSER_OUT || path.join(REPO, 'build', 'browser');
const KEEP = process.env.NBGATE_BROWSER_KEEP === '1';
const STORE = process.env.NBGATE_IMAGE_STORE || '/var/cache/nbgate/images';
const CRIU = process.env.NBGATE_CRIU_PATH || '/usr/local/sbin/criu';
const USER = 'rhea';

const T_GATEWAY = 20000;   // nbgate answers /hub/health
const T_SPAWN = 120000;    // Start -> JupyterLab UI (2 shared cores)
const T_KERNEL = 90000;    // kernel started, cell executed
const T_DUMP = 120000;     // checkpoint requested -> suspended
const T_RESTORE = 180000;  // held request -> restored -> answered
const T_STEP = 30000;      // ordinary page loads and clicks
const T_STOP = 30000;      // sandboxes gone after Stop
const T_AWAY = 8000;       // how long the open tab watches the server stay suspended

const SUM = '49999995000000'; // sum(range(10_000_000))

const S = {
	tmp: null, stateDir: null, port: 0, origin: '', proc: null, stdout: '', stderr: '',
	password: 'nb-' + randomBytes(12).toString('hex'), cfgPath: null, token: '',
	browser: null, ctx: null, page: null, app: null, tab2: null, failed: null,
	kernelId: '', wsEvents: [], states: [],
};

const skipReason = !fs.existsSync(path.join(STORE, 'index.json')) ?
	`no image store at ${STORE}: run \`make images\`` :
	!fs.existsSync(CRIU) ? `no CRIU at ${CRIU}: run \`make criu\`` : null;

/* Host pids of nbgate-init shims (and their trees) under our state dir. */
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

const shot = (page, name) => page.screenshot({ path: path.join(OUT, name) });

function step(name, timeout, fn) {
	test(name, { timeout, skip: skipReason || false }, async (t) => {
		if (S.failed) {
			t.skip(`skipped: an earlier step failed (${S.failed})`);
			return;
		}
		try {
			await fn(t);
		} catch (e) {
			S.failed = name;
			const tag = name.split(':')[0].replace(/[^a-z0-9]+/gi, '-');
			for (const [p, w] of [[S.page, 'home'], [S.app, 'app'], [S.tab2, 'tab2']])
				if (p)
					await shot(p, `resume-failure-${tag}-${w}.png`).catch(() => {});
			t.diagnostic(`states seen: ${JSON.stringify(S.states)}`);
			t.diagnostic(`websocket events: ${JSON.stringify(S.wsEvents.slice(-30))}`);
			t.diagnostic(`nbgate stderr tail:\n${S.stderr.slice(-6000)}`);
			const log = path.join(S.stateDir, 'run', USER, 'server.log');
			if (fs.existsSync(log))
				t.diagnostic(`${log} tail:\n${fs.readFileSync(log, 'utf8').slice(-3000)}`);
			throw e;
		}
	});
}

function nbgateCli(args, input) {
	const r = spawnSync(NBGATE, ['--config', S.cfgPath, ...args], { input, encoding: 'utf8', timeout: 30000 });
	assert.equal(r.status, 0, `nbgate ${args.join(' ')}: ${r.stderr}`);
	return r.stdout;
}

/* The hub API with rhea's token, from node (not the page: a request from
 * the page to /user/rhea/ would itself resume the server). */
async function api(method, sub, body) {
	const headers = { Authorization: `token ${S.token}` };
	if (body !== undefined)
		headers['Content-Type'] = 'application/json';
	const r = await fetch(`${S.origin}/hub/api/users/${USER}${sub}`, {
		method, headers, body: body === undefined ? undefined : JSON.stringify(body),
		signal: AbortSignal.timeout(T_STEP),
	});
	const text = await r.text();
	let json = null;
	try {
		json = JSON.parse(text);
	} catch { /* not JSON */ }
	return { status: r.status, text, json };
}

/* The default server's state as the users API says it. */
async function serverState() {
	const r = await api('GET', '');
	const srv = ((r.json || {}).servers || {})[''];
	if (!srv)
		return 'none';
	if (typeof srv.state === 'string')
		return srv.state;
	return srv.ready ? 'running' : String(srv.pending);
}

/* Records every state change seen while polling; resolves to the first
 * state in `want` (or the last one seen at the deadline). */
async function waitState(want, ms, every = 100) {
	let last = '';
	const got = await waitFor(async () => {
		last = await serverState().catch((e) => `error ${e.message}`);
		if (S.states[S.states.length - 1] !== last)
			S.states.push(last);
		return want.includes(last) ? last : false;
	}, ms, every);
	return got || last;
}

async function kernelIds() {
	// Node, with the token: the same /user/rhea/api/kernels the page uses
	const r = await fetch(`${S.origin}/user/${USER}/api/kernels`, {
		headers: { Authorization: `token ${S.token}` }, signal: AbortSignal.timeout(T_RESTORE),
	});
	assert.equal(r.status, 200, `GET /user/${USER}/api/kernels -> ${r.status}`);
	return (await r.json()).map((k) => k.id);
}

before(async () => {
	if (skipReason)
		return;
	assert.ok(fs.existsSync(NBGATE), `nbgate binary not found at ${NBGATE} (make all)`);
	assert.ok(fs.existsSync(CHROMIUM), `chromium not found at ${CHROMIUM}`);
	fs.mkdirSync(OUT, { recursive: true });
	for (const f of fs.readdirSync(OUT))
		if (f.startsWith('resume-'))
			fs.rmSync(path.join(OUT, f), { force: true });
	// a sandbox of an earlier run named rhea may still be cleaning up: its
	// cgroup would make our start fail
	const cg = ['/sys/fs/cgroup/nbgate/', '/sys/fs/cgroup/memory/nbgate/'].map((d) => d + USER);
	await waitFor(() => !cg.some((d) => fs.existsSync(d)), 20000, 200);
	// short: socket paths under <state>/run/<slug>/ must fit in sun_path
	S.tmp = fs.mkdtempSync('/tmp/nbr.');
	S.stateDir = path.join(S.tmp, 's');
	fs.mkdirSync(S.stateDir, { mode: 0o700 });
	S.port = await freePort();
	S.origin = `http://127.0.0.1:${S.port}`;
	// the embedded default (no spawner key, default profiles); info logs
	// say what the checkpoint and the held requests did
	const cfg = { listen: `127.0.0.1:${S.port}`, state_dir: S.stateDir, spawn_timeout: '120s',
		log_level: 'info', criu_path: CRIU };
	S.cfgPath = path.join(S.tmp, 'nbgate.json');
	fs.writeFileSync(S.cfgPath, JSON.stringify(cfg, null, 1));
	nbgateCli(['user', 'add', USER, '--password-stdin'], S.password + '\n');
	const toks = nbgateCli(['token', 'create', USER]).split(/\s+/).filter((t) => t.length >= 16);
	assert.ok(toks.length, 'nbgate token create printed a token');
	S.token = toks[toks.length - 1];
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

/* The notebook's cells, in order. */
const cellsOf = (page) => page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell');

/* Types src into the last cell's editor of page (default: the first tab)
 * and runs it with Shift+Enter; returns that cell's locator. */
async function runInLastCell(src, page = S.app) {
	const cells = () => cellsOf(page);
	const n = await cells().count();
	const cell = cells().nth(n - 1);
	const editor = cell.locator('.cm-content');
	await editor.click();
	await page.keyboard.press('ControlOrMeta+a');
	await page.keyboard.type(src);
	await page.keyboard.press('Shift+Enter');
	// Shift+Enter on the last cell appends a new empty one
	await waitFor(async () => (await cells().count()) > n, T_STEP, 100);
	return cell;
}

/* The kernel indicator of the status bar ("Python 3 (ipykernel) | Idle"). */
const statusBar = async () =>
	(await S.app.locator('#jp-main-statusbar').textContent().catch(() => '') || '').replace(/\s+/g, ' ').trim();

step('log in as rhea and start "jupyterlab" from the home page: JupyterLab loads', T_SPAWN + T_STEP * 2, async () => {
	const page = S.page;
	await page.goto(`${S.origin}/hub/login`);
	await page.locator('input[name="username"]').fill(USER);
	await page.locator('input[name="password"]').fill(S.password);
	await Promise.all([
		page.waitForURL((u) => pathOf(u.href) === '/hub/home'),
		page.locator('form[action="/hub/login"] button[type="submit"]').click(),
	]);
	const form = page.locator('form.spawn');
	await form.locator('select[name="profile"]').selectOption('jupyterlab');
	await Promise.all([
		page.waitForURL((u) => pathOf(u.href).startsWith(`/user/${USER}/lab`), { timeout: T_SPAWN }),
		form.locator('button[type="submit"]').click(),
	]);
	S.app = page;
	// leaving JupyterLab with an unsaved notebook asks first: leave
	page.on('dialog', (d) => (d.type() === 'beforeunload' ? d.accept() : d.dismiss()).catch(() => {}));
	page.on('websocket', (ws) => {
		const u = pathOf(ws.url().replace(/^ws/, 'http'));
		S.wsEvents.push({ t: Date.now(), ev: 'open', u });
		ws.on('close', () => S.wsEvents.push({ t: Date.now(), ev: 'close', u }));
		ws.on('socketerror', (e) => S.wsEvents.push({ t: Date.now(), ev: 'error', u, e: String(e) }));
	});
	await page.locator('#jp-main-dock-panel').waitFor({ timeout: T_SPAWN });
	await page.locator('.jp-LauncherCard').first().waitFor({ timeout: T_SPAWN });
	assert.equal(await serverState(), 'running');
});

step('a notebook: x = 6*7 and a 10M-element numpy array, outputs shown', T_KERNEL * 3, async () => {
	const page = S.app;
	await page.locator('.jp-LauncherCard[data-category="Notebook"]').first().click();
	await cellsOf(S.app).first().locator('.cm-content').waitFor({ timeout: T_KERNEL });
	// a run requested before the kernel connection is up is dropped
	await page.locator('#jp-main-statusbar', { hasText: /\| Idle/ }).waitFor({ timeout: T_KERNEL });
	const c1 = await runInLastCell('x = 6*7; print(x)');
	await c1.locator('.jp-OutputArea-output', { hasText: '42' }).waitFor({ timeout: T_KERNEL });
	const c2 = await runInLastCell('import numpy as np; a = np.arange(10_000_000); print(a.nbytes)');
	const o2 = c2.locator('.jp-OutputArea-output', { hasText: '80000000' });
	await o2.waitFor({ timeout: T_KERNEL });
	assert.equal((await o2.textContent()).trim(), '80000000');
	const ids = await kernelIds();
	assert.equal(ids.length, 1, `one kernel: ${ids}`);
	S.kernelId = ids[0];
	const kws = S.wsEvents.filter((e) => e.ev === 'open' && e.u.includes(`/api/kernels/${S.kernelId}/channels`));
	assert.ok(kws.length >= 1, `the kernel's channels WebSocket went through the gateway: ${JSON.stringify(S.wsEvents)}`);
	await shot(page, 'resume-1-before.png');
});

/* The kernel channels WebSocket events of the JupyterLab page since i. */
const kernelWs = (ev, from = 0) => S.wsEvents.slice(from).filter((e) =>
	e.ev === ev && e.u.includes(`/api/kernels/${S.kernelId}/channels`));

/* Every criu checkpoint of rhea's server that was written (ready or since
 * restored from). */
async function criuCheckpoints() {
	const r = await api('GET', '/server/checkpoints');
	assert.equal(r.status, 200, `GET .../server/checkpoints -> ${r.status} ${r.text}`);
	return r.json.filter((c) => c.mode === 'criu' && (c.state === 'ready' || c.state === 'restored'));
}

step('checkpoint (criu) with the page open and untouched: it stays suspended (the tab\'s reconnects and polling wait)', T_DUMP + T_AWAY + T_STEP, async (t) => {
	const t0 = Date.now();
	const pidsBefore = sandboxPids();
	const ev0 = S.wsEvents.length;
	S.states = [];
	const r = await api('POST', '/server/checkpoint', { mode: 'criu' });
	assert.equal(r.status, 202, `POST .../server/checkpoint -> ${r.status} ${r.text}`);
	const st = await waitState(['suspended', 'failed', 'stopped', 'running'], T_DUMP, 50);
	assert.equal(st, 'suspended', `the server is suspended: states ${JSON.stringify(S.states)}`);
	t.diagnostic(`suspended ${Date.now() - t0} ms after the POST`);
	const cks = await criuCheckpoints();
	assert.ok(cks.length >= 1 && cks[0].size > 80e6, `a criu checkpoint holding the array: ${JSON.stringify(cks)}`);
	const stillThere = pidsBefore.filter((p) => fs.existsSync(`/proc/${p}`));
	assert.deepEqual(stillThere, [], 'the sandbox processes are gone');
	assert.ok(kernelWs('close', ev0).length >= 1, `the gateway closed the kernel WebSocket for the dump: ${JSON.stringify(S.wsEvents.slice(ev0))}`);
	// the open tab keeps reconnecting and polling: those requests wait at the
	// gateway and do not bring the server back (else culling an idle tab's
	// server would be undone at once)
	const end = Date.now() + T_AWAY;
	while (Date.now() < end) {
		assert.equal(await serverState(), 'suspended', `stays suspended: ${JSON.stringify(S.states)}`);
		await sleep(250);
	}
	assert.equal(sandboxPids().length, 0, `no sandbox process while suspended: ${sandboxPids()}`);
	t.diagnostic(`JupyterLab status bar while suspended: "${await statusBar()}"; kernel WebSocket events: ${JSON.stringify(S.wsEvents.slice(ev0).map((e) => e.ev))}`);
	await shot(S.app, 'resume-2-suspended-tab-open.png');
});

step('the home page shows "suspended"', T_STEP * 2, async () => {
	// a tab of its own: the first one stays on JupyterLab, untouched
	const home = await S.ctx.newPage();
	try {
		await home.goto(`${S.origin}/hub/home`);
		const row = home.locator('table.servers tr', { hasText: 'suspended' });
		const ok = await row.first().waitFor({ timeout: T_STEP }).then(() => true, () => false);
		assert.ok(ok, `the home page says suspended: ${await home.locator('body').innerText()}`);
		assert.equal(await serverState(), 'suspended', 'looking at the home page resumes nothing');
		await shot(home, 'resume-3-home-suspended.png');
	} finally {
		await home.close();
	}
});

step('a second tab opening /user/rhea/lab gets "Resuming your server", then JupyterLab', T_RESTORE + T_SPAWN, async (t) => {
	const tab = await S.ctx.newPage();
	S.tab2 = tab;
	const t0 = Date.now();
	await tab.goto(`${S.origin}/user/${USER}/lab`);
	await tab.locator('h1', { hasText: 'Resuming your server' }).waitFor({ timeout: T_STEP });
	const text = await tab.locator('.resuming').innerText();
	assert.match(text, /being brought back with its kernels/, `the Resuming page: ${text}`);
	await shot(tab, 'resume-7-resuming-page.png');
	// app.js follows the progress stream and then replaces the location
	await tab.locator('#jp-main-dock-panel').waitFor({ timeout: T_RESTORE });
	t.diagnostic(`JupyterLab back ${Date.now() - t0} ms after the navigation`);
	// JupyterLab moves a second tab to a workspace of its own
	// (/lab/workspaces/auto-X) while the first one is still open
	assert.ok(pathOf(tab.url()).startsWith(`/user/${USER}/lab`), `JupyterLab at ${tab.url()}`);
	assert.equal(await serverState(), 'running');
	assert.deepEqual(await kernelIds(), [S.kernelId], 'the same kernel id after the second restore');
	// the workspace reopens the notebook on the same kernel: its state is there
	const nb = tab.locator('.jp-NotebookPanel');
	if (await waitFor(async () => (await nb.count()) > 0, T_STEP, 200)) {
		await tab.locator('#jp-main-statusbar', { hasText: /\| Idle/ }).waitFor({ timeout: T_KERNEL });
		const cell = await runInLastCell('print(x * 2, int(a[-1]))', tab);
		await cell.locator('.jp-OutputArea-output', { hasText: '84 9999999' }).waitFor({ timeout: T_KERNEL });
	} else {
		t.diagnostic('the notebook did not reopen from the workspace; kernel id checked only');
	}
	await shot(tab, 'resume-5-tab2-lab.png');
});

step('the first tab, never reloaded, reconnected by itself: print(x, int(a.sum())) prints "42 49999995000000"', T_RESTORE + T_STEP * 2, async (t) => {
	const page = S.app;
	await page.bringToFront();
	await page.locator('#jp-main-statusbar', { hasText: /\| Idle/ }).waitFor({ timeout: T_RESTORE });
	const t0 = Date.now();
	const cell = await runInLastCell('print(x, int(a.sum()))', page);
	const out = cell.locator('.jp-OutputArea-output', { hasText: SUM });
	await out.waitFor({ timeout: T_KERNEL });
	assert.equal((await out.textContent()).trim(), `42 ${SUM}`);
	t.diagnostic(`cell answered ${Date.now() - t0} ms after Shift+Enter`);
	assert.deepEqual(await kernelIds(), [S.kernelId], 'the same kernel id before and after');
	assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1,
		'the first tab was never reloaded');
	await shot(page, 'resume-6-first-tab.png');
});

step('Stop from the home page: no sandbox process left', T_STOP * 2, async () => {
	S.app = null;
	if (S.tab2)
		await S.tab2.close();
	S.tab2 = null;
	const page = S.page;
	await page.goto(`${S.origin}/hub/home`);
	const stops = page.locator('button[data-action="stop"]');
	assert.ok(await stops.count() >= 1, 'a server row with Stop');
	await stops.first().click();
	const stopped = await waitFor(async () => {
		const j = (await api('GET', '')).json || {};
		return Object.keys(j.servers || {}).length === 0;
	}, T_STOP, 300);
	assert.ok(stopped, 'the API shows no live server after Stop');
	const gone = await waitFor(() => sandboxPids().length === 0, T_STOP, 200);
	assert.ok(gone, `sandbox processes left: ${sandboxPids()}`);
});
