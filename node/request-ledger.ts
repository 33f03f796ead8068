// Requests sent to each cloud target, by kind and by month, kept in the home
// (`<home>/requests.json`) so `hearth cost` can say what this month's requests cost.
// Cloud stores bill per HTTP request, so the count is taken where requests leave
// (a middleware on the SDK client), not per Tier operation: one put of a volume is
// a Create, several UploadParts and a Complete.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { readStateFile, writeFileAtomicSync } from './atomic-file.ts';

interface LedgerFile {
  version: 1;
  /** "YYYY-MM" -> target -> request kind (PutObject, UploadPart, HeadObject, ...) -> count. */
  months: Record<string, Record<string, Record<string, number>>>;
}

export function monthOf(time: number): string {
  return new Date(time).toISOString().slice(0, 7);
}

export class RequestLedger {
  readonly file: string;
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(file: string) {
    this.file = file;
  }

  count(target: string, kind: string): void {
    const key = `${monthOf(Date.now())}\0${target}\0${kind}`;
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    // Written a few seconds later, in one go: a backup sends many requests.
    this.timer ??= setTimeout(() => this.flush(), 5000).unref();
  }

  private read(): LedgerFile {
    return readStateFile<LedgerFile>(this.file, () => ({ version: 1, months: {} }), (f) => f.version === 1 && typeof f.months === 'object', () => {});
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const data = this.read();
    for (const [key, n] of this.pending) {
      const [month, target, kind] = key.split('\0') as [string, string, string];
      const byTarget = (data.months[month] ??= {});
      const byKind = (byTarget[target] ??= {});
      byKind[kind] = (byKind[kind] ?? 0) + n;
    }
    this.pending.clear();
    if (!existsSync(dirname(this.file))) mkdirSync(dirname(this.file), { recursive: true });
    writeFileAtomicSync(this.file, JSON.stringify(data, null, 2) + '\n');
  }

  /** Requests to `target` in `month` (default this one), by kind, including those not yet written. */
  month(target: string, month = monthOf(Date.now())): Record<string, number> {
    const out = { ...(this.read().months[month]?.[target] ?? {}) };
    for (const [key, n] of this.pending) {
      const [m, t, kind] = key.split('\0') as [string, string, string];
      if (m === month && t === target) out[kind] = (out[kind] ?? 0) + n;
    }
    return out;
  }
}
