/**
 * A real nginx for the benchmarks: found on the PATH (or /usr/sbin), else
 * installed from Debian's packages (`apt-get install nginx`, with sudo when
 * not root); started on 127.0.0.1 and a free port with a configuration
 * written here, one process (`master_process off`), everything under a
 * temporary prefix; stopped (and the prefix removed) by `stop()` or when
 * this process exits.
 *
 * The configuration: `limit_req_zone $binary_remote_addr zone=one:1m
 * rate=<rate>r/s;` and `limit_req zone=one;` (no burst, no delay) on
 * /limited, answering 429 (`limit_req_status 429`) with no Retry-After; a
 * static file served at both /limited and /warm (not limited, for warm-up).
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { freePort } from './local.mjs';
import os from 'node:os';
import path from 'node:path';

function findNginx() {
  for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) {
    if (fs.existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** The nginx binary, installing Debian's package when missing. Returns null (with a reason) when that is impossible. */
export function ensureNginx() {
  let bin = findNginx();
  if (bin) return { bin };
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync(sudo[0] ?? 'apt-get', [...sudo.slice(1), ...(sudo.length ? ['apt-get'] : []), 'update', '-qq'], { stdio: 'ignore', env });
    execFileSync(sudo[0] ?? 'apt-get', [...sudo.slice(1), ...(sudo.length ? ['apt-get'] : []), 'install', '-y', '-qq', 'nginx'], { stdio: 'ignore', env });
  } catch (error) {
    return { bin: null, reason: `nginx is not installed and apt-get install nginx failed (${error.message})` };
  }
  bin = findNginx();
  return bin ? { bin } : { bin: null, reason: 'apt-get installed nginx but no nginx binary was found' };
}


async function waitForPort(port, deadlineMs) {
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadlineMs) throw new Error(`nginx did not listen on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts nginx with `limit_req` at `rate` r/s (integer) and `burst`. */
export async function startNginx({ rate, burst = 0 }) {
  const { bin, reason } = ensureNginx();
  if (!bin) return { skip: reason };
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-pace-nginx-'));
  fs.mkdirSync(path.join(prefix, 'html'));
  fs.writeFileSync(path.join(prefix, 'html', 'limited'), 'ok\n');
  fs.writeFileSync(path.join(prefix, 'html', 'warm'), 'ok\n');
  const port = await freePort();
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_requests 1000000;
  limit_req_zone $binary_remote_addr zone=one:1m rate=${rate}r/s;
  limit_req_status 429;
  server {
    listen 127.0.0.1:${port};
    root ${prefix}/html;
    location = /limited { limit_req zone=one${burst > 0 ? ` burst=${burst} nodelay` : ''}; }
    location = /warm { }
  }
}
`;
  const confFile = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(confFile, conf);
  const child = spawn(bin, ['-p', prefix, '-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const onExit = () => { try { child.kill('SIGKILL'); } catch { /* gone */ } };
  process.once('exit', onExit);
  try {
    await Promise.race([waitForPort(port, Date.now() + 10_000), exited.then((code) => { throw new Error(`nginx exited (${code}): ${stderr.trim()}`); })]);
  } catch (error) {
    onExit();
    fs.rmSync(prefix, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    version: nginxVersion(bin),
    async stop() {
      process.off('exit', onExit);
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      onExit();
      fs.rmSync(prefix, { recursive: true, force: true });
    },
  };
}

/** `nginx -v` prints to stderr. */
function nginxVersion(bin) {
  try {
    return execFileSync('sh', ['-c', `"${bin}" -v 2>&1`], { encoding: 'utf8' }).replace(/^nginx version:\s*/, '').trim();
  } catch {
    return 'unknown';
  }
}
