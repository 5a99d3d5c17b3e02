/**
 * Runs one hub process for the Node test packages (hub/tests/sdk,
 * hub/tests/cluster): spawns the binary with `--listen 127.0.0.1:0` among its
 * args, copies its output to a log file, and resolves once it logs
 * "listening on http://ADDR". Node built-ins only.
 *
 * If the hub exits, cannot be spawned, or does not listen within `startupMs`,
 * it is killed and the promise rejects with why, the log file and its tail.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';

const LISTENING_RE = /listening on http:\/\/([0-9.]+:[0-9]+)/;
// eslint-disable-next-line no-control-regex
export const ANSI_RE = /\x1b\[[0-9;]*m/g;

/** The last lines of a log, for error messages. */
export function tail(text, lines = 40) {
  const all = text.replace(ANSI_RE, '').trimEnd().split('\n');
  return all.slice(-lines).map((l) => `    | ${l}`).join('\n');
}

/** A sleep that does not keep the process alive (deadlines raced against events). */
export function backgroundSleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Resolves to { child, addr, exited, exitInfo(), log(), logClosed }:
 * `exited` resolves with { code, signal }; the log file is closed on exit and
 * `logClosed` resolves then.
 */
export async function spawnHub({ bin, args, env = {}, logFile, logHeader, label = 'hub', startupMs }) {
  const logStream = createWriteStream(logFile);
  logStream.write(`${logHeader ?? `$ ${bin} ${args.join(' ')}`}\n`);
  const logClosed = new Promise((resolve) => logStream.on('close', resolve));
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
  let logText = '';
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      logStream.end();
      resolve(exitInfo);
    });
  });
  const spawnError = new Promise((resolve) => child.on('error', resolve));
  const listening = new Promise((resolve) => {
    let pending = '';
    const onData = (chunk) => {
      const text = chunk.toString('utf8');
      logText += text;
      logStream.write(text);
      pending += text.replace(ANSI_RE, '');
      const m = LISTENING_RE.exec(pending);
      if (m) resolve(m[1]);
      // Keep only the unfinished last line for matching.
      const nl = pending.lastIndexOf('\n');
      if (nl >= 0 && !m) pending = pending.slice(nl + 1);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
  });
  const startup = await Promise.race([
    listening.then((addr) => ({ addr })),
    exited.then((e) => ({ exited: e })),
    spawnError.then((err) => ({ err })),
    backgroundSleep(startupMs).then(() => ({ timeout: true })),
  ]);
  if (!startup.addr) {
    child.kill('SIGKILL');
    logStream.end();
    let why;
    if (startup.err) {
      why = `could not spawn ${bin}: ${startup.err.message} (build it with \`cargo build -p hub\` or set HUB_BIN)`;
    } else if (startup.exited) {
      why = `${label} exited (code ${startup.exited.code}, signal ${startup.exited.signal}) before logging "listening on http://..."`;
    } else {
      why = `${label} did not log "listening on http://..." within ${startupMs} ms`;
    }
    throw new Error(`${why}; args: ${args.join(' ')}; log: ${logFile}\n${tail(logText)}`);
  }
  return { child, addr: startup.addr, exited, exitInfo: () => exitInfo, log: () => logText, logClosed };
}
