import { createConnection } from 'node:net';

export const BACKEND = 'gateways';

export interface HaproxyServer {
  name: string;
  address: string;
}

/**
 * The local cluster runs the committed infra/haproxy/haproxy.cfg (the one docker compose uses),
 * so what the tests prove is what the compose stack runs. Only addresses change: the `bind`
 * line, the admin socket path and the backend's `server` lines (Docker names -> loopback ports).
 */
export function renderHaproxyConfig(
  template: string,
  options: { bind: string; adminSocket: string; servers: readonly HaproxyServer[] },
): string {
  const out: string[] = [];
  let section = '';
  let backendSeen = false;
  let bindSeen = false;
  let socketSeen = false;
  const emitServers = () => {
    for (const s of options.servers) out.push(`    server ${s.name} ${s.address}`);
  };
  for (const line of template.replace(/\n+$/, '').split('\n')) {
    const trimmed = line.trim();
    const header = /^(global|defaults|frontend|backend|listen|resolvers|peers|userlist)\b\s*(\S*)/.exec(line);
    if (header) {
      if (section === `backend ${BACKEND}`) emitServers();
      section = `${header[1]} ${header[2] ?? ''}`.trim();
      if (section === `backend ${BACKEND}`) backendSeen = true;
      out.push(line);
      continue;
    }
    if (/^bind\s/.test(trimmed)) {
      bindSeen = true;
      out.push(`    bind ${options.bind}`);
      continue;
    }
    if (/^stats socket\s/.test(trimmed)) {
      socketSeen = true;
      out.push(`    stats socket ${options.adminSocket} mode 600 level admin`);
      continue;
    }
    if (section === `backend ${BACKEND}` && /^server\s/.test(trimmed)) continue;
    out.push(line);
  }
  if (section === `backend ${BACKEND}`) emitServers();
  if (!backendSeen || !bindSeen || !socketSeen) {
    throw new Error(`haproxy config template needs a bind line, a stats socket line and a 'backend ${BACKEND}' section`);
  }
  return `${out.join('\n')}\n`;
}

/** One command on HAProxy's runtime API (the admin socket); returns its whole answer. */
export function haproxyCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`haproxy: no answer to '${command}' within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${command}\n`));
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

export interface ServerStat {
  /** UP, DOWN, MAINT, `UP 1/2` (going down), `DOWN 1/2` (coming up), ... */
  status: string;
  /** Sessions open to this server now (an upgraded WebSocket is one). */
  current: number;
  /** Sessions this server has taken since HAProxy started (or since it was added). */
  total: number;
}

/** `show stat` for the gateways backend, by server name. */
export async function serverStats(socketPath: string): Promise<Map<string, ServerStat>> {
  const csv = await haproxyCommand(socketPath, 'show stat');
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = (lines.shift() ?? '').replace(/^#\s*/, '').split(',');
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`haproxy: 'show stat' has no ${name} column`);
    return i;
  };
  const [px, sv, scur, stot, status] = [col('pxname'), col('svname'), col('scur'), col('stot'), col('status')];
  const stats = new Map<string, ServerStat>();
  for (const line of lines) {
    const f = line.split(',');
    if (f[px] !== BACKEND || f[sv] === 'BACKEND' || f[sv] === 'FRONTEND') continue;
    stats.set(f[sv] ?? '', { status: f[status] ?? '', current: Number(f[scur] ?? 0), total: Number(f[stot] ?? 0) });
  }
  return stats;
}

/** Health-check settings for servers added at run time (dynamic servers take no default-server). */
export const DYNAMIC_SERVER_ARGS = 'check inter 1s fall 2 rise 2';

/** Adds a server to the running HAProxy and puts it in rotation once its checks pass. */
export async function addServer(socketPath: string, server: HaproxyServer): Promise<void> {
  const steps = [
    `add server ${BACKEND}/${server.name} ${server.address} ${DYNAMIC_SERVER_ARGS}`,
    `enable health ${BACKEND}/${server.name}`,
    `enable server ${BACKEND}/${server.name}`,
  ];
  for (const step of steps) {
    const answer = (await haproxyCommand(socketPath, step)).trim();
    if (answer !== '' && !/New server registered/i.test(answer)) {
      throw new Error(`haproxy: '${step}' answered: ${answer}`);
    }
  }
}

/** Takes a server out for good (it must have no connections left: drain it first). */
export async function deleteServer(socketPath: string, name: string): Promise<void> {
  await haproxyCommand(socketPath, `disable server ${BACKEND}/${name}`);
  const answer = (await haproxyCommand(socketPath, `del server ${BACKEND}/${name}`)).trim();
  if (!/Server deleted/i.test(answer)) throw new Error(`haproxy: 'del server ${name}' answered: ${answer}`);
}
