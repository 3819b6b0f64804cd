// Helpers shared by the browser tests: free loopback ports and bounded
// polling. Everything here waits at most as long as it is told.
import net from 'node:net';
import { chromium } from 'playwright-core';

/* A TCP port free on 127.0.0.1 right now. */
export function freePort() {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.unref();
		srv.on('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			const { port } = srv.address();
			srv.close(() => resolve(port));
		});
	});
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls pred() (async, returns truthy to stop) every `every` ms, at most `ms`. */
export async function waitFor(pred, ms, every = 200) {
	const end = Date.now() + ms;
	let last;
	while (Date.now() < end) {
		last = await pred();
		if (last)
			return last;
		await sleep(every);
	}
	return last;
}

export const pathOf = (url) => new URL(url).pathname;

/*
 * Debian's chromium, headless, never through a proxy and without the
 * background connections this machine's closed network refuses.
 * Chromium refuses to start as root with its sandbox on ("Running as root
 * without --no-sandbox is not supported"), and containers often lack the
 * user namespaces it needs: only then is it turned off; as a normal user
 * it stays on. The pages loaded are our own, on loopback.
 */
export function launchChromium(executablePath, timeout) {
	const args = ['--no-proxy-server', '--disable-background-networking',
		'--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu'];
	if (process.getuid && process.getuid() === 0)
		args.push('--no-sandbox');
	return chromium.launch({ executablePath, headless: true, args, timeout });
}
