import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway private CA and a server certificate it signed, as PEM files in a temporary folder. */
export interface TestCertificates {
  dir: string;
  /** The CA's certificate: what a client trusts (NODE_EXTRA_CA_CERTS, or `ca`). */
  caFile: string;
  ca: string;
  /** The server's certificate and key (redis-server `--tls-cert-file`, `--tls-key-file`). */
  certFile: string;
  keyFile: string;
  /** Another CA that signed nothing here: a client trusting only it must refuse the server. */
  otherCaFile: string;
  otherCa: string;
  remove(): void;
}

export interface TestCertificateOptions {
  /** subjectAltName DNS entries; `['localhost']` by default. */
  dnsNames?: string[];
  /** subjectAltName IP entries; none by default (a certificate issued for a hostname only). */
  ips?: string[];
}

/**
 * A CA and a server certificate for it (P-256 keys, valid one day), made with the `openssl` CLI,
 * as a private CA of a managed Redis would issue: the client must be told to trust the CA.
 */
export function createTestCertificates(options: TestCertificateOptions = {}): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'wsgw-tls-'));
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const caExtensions = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  try {
    for (const name of ['ca', 'other-ca']) {
      openssl('req', '-x509', ...key, '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`), '-days', '1', '-subj', `/CN=wsgw test ${name}`, ...caExtensions);
    }
    const altNames = [
      ...(options.dnsNames ?? ['localhost']).map((name) => `DNS:${name}`),
      ...(options.ips ?? []).map((ip) => `IP:${ip}`),
    ];
    writeFileSync(file('server.ext'), `subjectAltName=${altNames.join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl('req', ...key, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=wsgw test redis');
    openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial',
      '-out', file('server.crt'), '-days', '1', '-extfile', file('server.ext'));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    caFile: file('ca.crt'),
    ca: readFileSync(file('ca.crt'), 'utf8'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
    otherCaFile: file('other-ca.crt'),
    otherCa: readFileSync(file('other-ca.crt'), 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
