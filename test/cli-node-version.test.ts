// The README's commands on a machine whose own node is older than Hearth needs: npm's
// scripts run the Node 24 that `npm install` brought, and hearth started by the old
// node itself says in one line which version it needs.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const HEARTH = fileURLToPath(new URL('../cli/hearth.mjs', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));

function olderNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(candidate)) continue;
    const r = spawnSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' });
    const [major, minor] = r.stdout.trim().split('.').map(Number);
    if (major < 22 || (major === 22 && minor < 12)) return candidate;
  }
  return undefined;
}

describe('node version', () => {
  const old = olderNode();
  it.skipIf(!old)('an unsupported node gets one line naming the version hearth needs', () => {
    const r = spawnSync(old!, [HEARTH, '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^hearth: error: Node\.js 2\d\.\d+\.\d+ is too old: hearth needs Node\.js >= 22\.12/);
  });

  it('npm scripts run the Node 24 the install brought, and hearth --version names it', () => {
    const r = spawnSync('npm', ['run', '-s', 'hearth', '--', '--version'], { cwd: root, encoding: 'utf8', env: { ...process.env, PATH: `/usr/bin:/bin` } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^hearth \d+\.\d+\.\d+ \(Node\.js 24\.\d+\.\d+\)$/);
  });
});
