// Volumes are named by the date range of the files they hold, as lomo-backup
// does (2024-04-13--2024-04-20.iso), so a person browsing a cloud bucket or a
// USB disk can tell what is where. A second volume with the same range gets -2, -3...
import type { Catalog } from '../storage/catalog/catalog.ts';

function day(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export async function volumeName(catalog: Catalog, minMs: number, maxMs: number): Promise<string> {
  const base = `${day(minMs)}--${day(maxMs)}`;
  const taken = new Set<string>();
  for await (const o of catalog.objects()) if (o.kind === 'volume') taken.add(o.name);
  if (!taken.has(`${base}.iso`)) return `${base}.iso`;
  for (let i = 2; ; i++) if (!taken.has(`${base}-${i}.iso`)) return `${base}-${i}.iso`;
}
