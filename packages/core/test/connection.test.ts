import { describe, expect, it } from 'vitest';
import { tokenFingerprint, type AdmissionTicket } from '@wsgw/core';
import { FakeConnection } from './fakes.js';

const withHash = (tokenHash: string): AdmissionTicket => ({
  connectionId: 'c1',
  userId: 'u1',
  path: '/api/ws/agent',
  origin: undefined,
  tokenHash,
});

describe('Connection', () => {
  it('gives back the token hash it was opened with, however it keeps it', () => {
    const hashes = [
      tokenFingerprint('a session token'),
      tokenFingerprint('another one'),
      '000000000000',
      '00000f000001',
      'ffffffffffff',
      // Not the fingerprint's form: kept as they are.
      'abc',
      '',
      'ABCDEF123456',
      '0123456789abc',
      '0123456789a-',
      'g00000000000',
    ];
    for (const hash of hashes) expect(new FakeConnection(withHash(hash)).tokenHash).toBe(hash);
  });
});
