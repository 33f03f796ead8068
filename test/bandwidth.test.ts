// The pieces of the bandwidth caps and of `hearth peers`' connection column, with
// an injected clock: rates and windows parsed, the token bucket's sharing and
// lifting, the full-speed window across midnight, the classification of remote
// multiaddrs, and the runs of transfers whose rate is shown. The caps on real
// transfers between daemons: test/bandwidth-daemons.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TokenBucket, limited } from '../protocol/rate-limit.ts';
import { bandwidthControl, inWindows, parseWindows } from '../node/bandwidth.ts';
import { bestConnection, connectionKind } from '../node/connection-kind.ts';
import { TransferRates } from '../node/transfer-rates.ts';
import { parseRate } from '../node/units.ts';
import { hearth, hearthJson, hearthOk } from './helpers/cli.ts';

const MiB = 2 ** 20;
const work = mkdtempSync(join(tmpdir(), 'hearth-bandwidth-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A clock that only moves when told to, and sleeps that move it. */
function fakeClock() {
  const clock = { now: 0, slept: [] as number[] };
  return {
    clock,
    options: {
      now: () => clock.now,
      sleep: async (ms: number) => {
        clock.slept.push(ms);
        clock.now += ms;
      },
    },
  };
}

describe('rates and windows', () => {
  it('parses rates in bytes and bits per second, and 0 or none as unlimited', () => {
    expect(parseRate('2MB/s')).toBe(2e6);
    expect(parseRate('16MiB/s')).toBe(16 * MiB);
    expect(parseRate('500 KiB/s')).toBe(500 * 1024);
    expect(parseRate('10Mbit/s')).toBe(1.25e6);
    expect(parseRate('10Mbps')).toBe(1.25e6);
    expect(parseRate('0')).toBe(0);
    expect(parseRate('none')).toBe(0);
    for (const bad of ['2MB', 'fast', '-1MB/s', '2 parsecs/s', '']) expect(() => parseRate(bad), bad).toThrow(/invalid rate/);
  });

  it('parses full-speed windows, wrapping midnight', () => {
    const [night] = parseWindows('22:00-07:00');
    const at = (h: number, m = 0) => new Date(2026, 11, 7, h, m);
    expect(inWindows([night!], at(23))).toBe(true);
    expect(inWindows([night!], at(0, 30))).toBe(true);
    expect(inWindows([night!], at(6, 59))).toBe(true);
    expect(inWindows([night!], at(7))).toBe(false);
    expect(inWindows([night!], at(12))).toBe(false);
    expect(inWindows([night!], at(22))).toBe(true);
    const two = parseWindows('01:00-02:00, 12:00-13:30');
    expect(inWindows(two, at(13, 15))).toBe(true);
    expect(inWindows(two, at(2, 0))).toBe(false);
    expect(parseWindows('off')).toEqual([]);
    for (const bad of ['22:00', '25:00-07:00', '22:00-22:00', '22-07', '10:60-11:00']) expect(() => parseWindows(bad), bad).toThrow(/not a time window/);
  });

  it('config set refuses a bad value with one line naming the key, and config ls shows the settings', () => {
    const home = join(work, 'home');
    hearthJson(home, ['init']);
    for (const [key, value, says] of [
      ['net.upload.limit', 'fast', /^net\.upload\.limit must be 0 or none for unlimited, or a rate from 32KiB\/s like 2MB\/s or 10Mbit\/s, got "fast"/],
      ['net.download.limit', '1KB/s', /^net\.download\.limit must be .*, got "1KB\/s"$/],
      ['net.fullSpeed', '22:00', /^net\.fullSpeed "22:00" is not a time window: use local times "HH:MM-HH:MM"/],
    ] as const) {
      const r = hearth(home, ['config', 'set', key, value]);
      expect(r.code).not.toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]!.replace(/^(hearth: )?(error: )?/, '')).toMatch(says);
    }
    hearthOk(home, ['config', 'set', 'net.upload.limit', '2MB/s']);
    hearthOk(home, ['config', 'set', 'net.fullSpeed', '22:00-07:00']);
    const settings = hearthJson<Array<{ key: string; value: string; default: string }>>(home, ['config', 'ls']);
    const of = (key: string) => settings.find((s) => s.key === key);
    expect(of('net.upload.limit')).toMatchObject({ value: '2MB/s', default: 'none' });
    expect(of('net.download.limit')).toMatchObject({ value: 'none', default: 'none' });
    expect(of('net.fullSpeed')).toMatchObject({ value: '22:00-07:00', default: 'off' });
    expect(hearthOk(home, ['config', 'ls'])).toMatch(/net\.upload\.limit\s+2MB\/s\s+none/);
  });
});

describe('the token bucket', () => {
  it('holds concurrent transfers together to the rate, whatever their chunk sizes', async () => {
    const { clock, options } = fakeClock();
    const bucket = new TokenBucket(() => 4 * MiB, options);
    // Two transfers take 8 MiB each, interleaved, at the same instant.
    await Promise.all([0, 1].map(async () => {
      for (let i = 0; i < 8; i++) await bucket.take(MiB);
    }));
    // 16 MiB at 4 MiB/s: 4 s, less at most the 0.1 s of burst a bucket holds.
    expect(clock.now).toBeGreaterThanOrEqual(3900);
    expect(clock.now).toBeLessThanOrEqual(4000);
  });

  it('gathers at most a tenth of a second of tokens while idle', async () => {
    const { clock, options } = fakeClock();
    const bucket = new TokenBucket(() => MiB, options);
    await bucket.take(1);
    clock.now += 60_000;
    clock.slept.length = 0;
    await bucket.take(MiB);
    expect(clock.slept).toHaveLength(1);
    expect(clock.slept[0]!).toBeCloseTo(900, 0);
  });

  it('passes at once while the rate is 0, and starts owing nothing when a cap comes back', async () => {
    const { clock, options } = fakeClock();
    let rate = 0;
    const bucket = new TokenBucket(() => rate, options);
    for (let i = 0; i < 100; i++) await bucket.take(MiB);
    expect(clock.slept).toEqual([]);
    expect(bucket.slice()).toBe(Infinity);
    rate = MiB;
    await bucket.take(MiB);
    expect(clock.slept).toEqual([1000]);
  });

  it('gives back the tokens of a take that was aborted', async () => {
    const clock = { now: 0 };
    const sleeps: number[] = [];
    const bucket = new TokenBucket(() => MiB, {
      now: () => clock.now,
      sleep: async (ms, signal) => {
        sleeps.push(ms);
        if (signal?.aborted) throw new Error('aborted');
        clock.now += ms;
      },
    });
    await expect(bucket.take(10 * MiB, AbortSignal.abort())).rejects.toThrow('aborted');
    // The 10 MiB never passed: the next 1 MiB waits for itself alone.
    await bucket.take(MiB);
    expect(sleeps[1]).toBeCloseTo(1000, 0);
  });

  it('hands a chunk on in slices short enough that no wait is long', async () => {
    const { clock, options } = fakeClock();
    const bucket = new TokenBucket(() => 32 * 1024, options);
    const parts: number[] = [];
    for await (const part of limited(new Uint8Array(MiB), bucket)) parts.push(part.byteLength);
    expect(parts.reduce((a, b) => a + b)).toBe(MiB);
    expect(Math.max(...parts)).toBe(16 * 1024);
    expect(Math.max(...clock.slept)).toBeLessThanOrEqual(500);
    expect(clock.now).toBeCloseTo(32_000, -2);
  });
});

describe('the full-speed window', () => {
  it('lifts both caps while local time is inside it, and only then', async () => {
    let now = new Date(2026, 11, 7, 23, 30);
    const settings = new Map([['net.upload.limit', '32KiB/s'], ['net.download.limit', '64KiB/s'], ['net.fullSpeed', '22:00-07:00']]);
    const control = bandwidthControl({ settings: () => ({ get: (key) => settings.get(key)! }), now: () => now });
    /** Whether a take is still waiting after 100 ms. */
    const waits = (take: Promise<void>): Promise<boolean> => Promise.race([take.then(() => false), new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 100))]);
    // Inside the window (across midnight): 4 MiB pass at once in each direction.
    expect(await waits(control.upload.take(4 * MiB))).toBe(false);
    expect(await waits(control.download.take(4 * MiB))).toBe(false);
    now = new Date(2026, 11, 8, 6, 59);
    expect(await waits(control.upload.take(4 * MiB))).toBe(false);
    // Outside it the caps hold: 1 MiB at 32 KiB/s waits about 32 s.
    now = new Date(2026, 11, 8, 7, 0);
    const signal = AbortSignal.timeout(300);
    const capped = control.upload.take(MiB, signal);
    expect(await waits(capped.catch(() => {}))).toBe(true);
    await expect(capped).rejects.toThrow();
    // A changed setting applies at the next take.
    settings.set('net.upload.limit', 'none');
    expect(await waits(control.upload.take(4 * MiB))).toBe(false);
  });
});

describe('how a relative is connected', () => {
  const A = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo';
  const RELAY = '12D3KooWNvSZnPi3RrhrTwEY4LuuBeB6K6facKUCJcyWG1aoDd2p';
  it('tells direct, relayed (naming the relay) and WebRTC apart from the remote multiaddr', () => {
    expect(connectionKind('/ip4/127.0.0.1/tcp/4001')).toEqual({ kind: 'direct' });
    expect(connectionKind(`/ip6/3fff::1/tcp/4001/p2p/${A}`)).toEqual({ kind: 'direct' });
    expect(connectionKind(`/ip4/198.51.100.7/tcp/4001/p2p/${RELAY}/p2p-circuit/p2p/${A}`)).toEqual({ kind: 'relayed', relay: RELAY });
    expect(connectionKind(`/ip4/198.51.100.7/tcp/4001/p2p/${RELAY}/p2p-circuit`)).toEqual({ kind: 'relayed', relay: RELAY });
    expect(connectionKind(`/p2p-circuit/p2p/${A}`)).toEqual({ kind: 'relayed', relay: null });
    expect(connectionKind(`/ip4/198.51.100.7/tcp/4001/p2p/${RELAY}/p2p-circuit/webrtc/p2p/${A}`)).toEqual({ kind: 'webrtc' });
    expect(connectionKind(`/ip4/192.0.2.1/udp/4002/webrtc-direct/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ/p2p/${A}`)).toEqual({ kind: 'webrtc' });
    // A name that merely contains the word is not a protocol.
    expect(connectionKind('/dns4/webrtc.example/tcp/4001')).toEqual({ kind: 'direct' });
  });

  it('prefers direct, then WebRTC, then relayed, and is null without a connection', () => {
    const relayed = `/ip4/198.51.100.7/tcp/4001/p2p/${RELAY}/p2p-circuit`;
    const webrtc = `${relayed}/webrtc`;
    expect(bestConnection([relayed, webrtc, '/ip4/127.0.0.1/tcp/1'])).toEqual({ kind: 'direct' });
    expect(bestConnection([relayed, webrtc])).toEqual({ kind: 'webrtc' });
    expect(bestConnection([relayed])).toEqual({ kind: 'relayed', relay: RELAY });
    expect(bestConnection([])).toBeNull();
  });
});

describe('the rate of the last transfers', () => {
  it('counts transfers back to back as one run, per relative and direction', () => {
    const rates = new TransferRates();
    expect(rates.last('A', 'to')).toBeNull();
    rates.record('A', 'to', 10 * MiB, 0, 1000);
    rates.record('A', 'to', 10 * MiB, 1500, 2000);
    rates.record('A', 'from', MiB, 0, 4000);
    expect(rates.last('A', 'to')).toMatchObject({ bytes: 20 * MiB, seconds: 2, bytesPerSecond: 10 * MiB });
    expect(rates.last('A', 'from')).toMatchObject({ bytes: MiB, seconds: 4 });
    // A transfer long after the last one starts a new run.
    rates.record('A', 'to', MiB, 10_000, 12_000);
    expect(rates.last('A', 'to')).toMatchObject({ bytes: MiB, seconds: 2, bytesPerSecond: MiB / 2 });
    expect(rates.last('B', 'to')).toBeNull();
    rates.forget('A');
    expect(rates.last('A', 'from')).toBeNull();
  });
});
