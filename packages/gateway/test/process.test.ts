import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { launchGateway as run, open } from '@wsgw/testkit';

const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('the gateway process (CONTRACT §1)', () => {
  it('exits non-zero before listening on bad configuration, one stderr line per problem', async () => {
    const r = run({
      ENVIRONMENT: 'production',
      CORS_ORIGINS: '*',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: 'many',
      SESSION_VALIDATOR: 'magic',
    });
    const { code } = await r.exit;
    expect(code).not.toBe(0);
    const lines = r.stderr().trim().split('\n');
    expect(lines.some((l) => l.includes('CORS_ORIGINS'))).toBe(true);
    expect(lines.some((l) => l.includes('WEBSOCKET_MAX_CONNECTIONS_PER_USER'))).toBe(true);
    expect(lines.some((l) => l.includes('SESSION_VALIDATOR'))).toBe(true);
    expect(lines.some((l) => l.includes('REDIS_URL'))).toBe(true);
    expect(r.stdout()).not.toContain('gateway listening');
  });

  it('serves the seed client, then drains on SIGTERM: 1001 to open sockets, exit 0', async () => {
    const r = run({ SHUTDOWN_DRAIN_SECONDS: '2' });
    const port = await r.listening();
    const client = await open(`ws://127.0.0.1:${port}/api/ws/agent?session_token=test123`);
    client.send({ agent_type: 'echo', message: 'Hello', conversation_id: 'c1' });
    expect(await client.next()).toMatchObject({ type: 'response', message: 'Hello', conversation_id: 'c1' });
    r.child.kill('SIGTERM');
    expect((await client.closed).code).toBe(1001);
    expect(await r.exit).toEqual({ code: 0, signal: null });
  });

  it('SIGINT drains the same way', async () => {
    const r = run({});
    await r.listening();
    r.child.kill('SIGINT');
    expect((await r.exit).code).toBe(0);
  });

  it('the README client example prints the echo reply', async () => {
    const r = run({});
    const port = await r.listening();
    const example = spawn(process.execPath, ['examples/client.mjs', `ws://127.0.0.1:${port}/api/ws/agent`], { cwd: root });
    let printed = '';
    example.stdout.on('data', (c: Buffer) => (printed += c.toString()));
    const code = await new Promise((res) => example.on('exit', res));
    expect(code).toBe(0);
    expect(JSON.parse(printed)).toEqual({
      type: 'response',
      agent_type: 'echo',
      conversation_id: 'c1',
      in_reply_to: null,
      message: 'Hello',
    });
    r.child.kill('SIGTERM');
    await r.exit;
  });

  it.each(['999.1.1.1', 'example.invalid'])('HOST=%s it cannot listen on: exit non-zero, one stderr line naming HOST/PORT', async (host) => {
    const r = run({ HOST: host, PORT: '0', OTEL_SDK_DISABLED: 'true' });
    const { code } = await r.exit;
    expect(code).not.toBe(0);
    expect(r.stderr().trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^HOST/PORT: cannot listen on ${host}:0`))]);
    expect(r.stdout()).not.toContain('gateway listening');
    // The log pipeline still gets the fatal line with the error.
    expect(r.lines().some((l) => l['level'] === 'fatal')).toBe(true);
  });

  it('a PORT in use, even by another gateway (uWS would share it by SO_REUSEPORT): exit non-zero naming HOST/PORT', async () => {
    const first = run({ OTEL_SDK_DISABLED: 'true' });
    const port = await first.listening();
    try {
      const second = run({ PORT: String(port), OTEL_SDK_DISABLED: 'true' });
      const { code } = await second.exit;
      expect(code).not.toBe(0);
      expect(second.stderr()).toMatch(new RegExp(`^HOST/PORT: cannot listen on 127\\.0\\.0\\.1:${port}`));
      expect(second.stdout()).not.toContain('gateway listening');
    } finally {
      first.child.kill('SIGTERM');
      await first.exit;
    }
  });

  it('refuses to start when uWebSockets.js would fall back to its slow JS implementation', async () => {
    const r = run({ UWS_USE_FALLBACK: '1' });
    const { code } = await r.exit;
    expect(code).not.toBe(0);
    expect(r.stdout() + r.stderr()).toContain('native binary did not load');
  });
});

/** The signals a process catches (Linux /proc/<pid>/status SigCgt), as a bit mask; 0n when unreadable. */
function caughtSignals(pid: number): bigint {
  try {
    const m = /SigCgt:\s*([0-9a-f]+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : 0n;
  } catch {
    return 0n;
  }
}

describe('the gateway process while it starts (CONTRACT §1)', () => {
  it('SIGTERM during start-up (before listening) still ends with exit 0, not killed by the signal', async () => {
    const gw = run({ OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', SHUTDOWN_DRAIN_SECONDS: '1' });
    const pid = gw.child.pid!;
    // Node has finished its own bootstrap once it catches SIGUSR1 (signal 10, the inspector's):
    // from then on the gateway's entry module is loading. 100 ms later it is still loading its
    // modules (it listens ~600 ms after spawn on an idle machine), where an orchestrator's SIGTERM
    // for a pod that is still starting lands.
    const deadline = Date.now() + 10_000;
    while ((caughtSignals(pid) & (1n << 9n)) === 0n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    await new Promise((r) => setTimeout(r, 100));
    const listeningBefore = gw.stdout().includes('gateway listening');
    gw.child.kill('SIGTERM');
    const exit = await Promise.race([
      gw.exit,
      new Promise<{ code: null; signal: 'timeout' }>((r) => setTimeout(() => r({ code: null, signal: 'timeout' }), 15_000)),
    ]);
    if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGKILL');
    expect(listeningBefore, 'the signal was meant to land during start-up').toBe(false);
    expect(exit).toEqual({ code: 0, signal: null });
  }, 30_000);
});
