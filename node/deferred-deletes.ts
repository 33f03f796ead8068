// Deletes of archived S3 objects younger than their class's minimum duration (180
// days for Deep Archive), put off until they cost nothing extra
// (`<home>/s3-deferred-deletes.json`). S3Tier hands them here instead of sending
// them; each backup sends the ones that are due; `hearth cost` shows what deleting
// them now would cost.
import { readStateFile, writeFileAtomicSync } from './atomic-file.ts';
import type { S3ObjectState } from '../storage/tier/s3.ts';
import type { Tier } from '../storage/tier/tier.ts';

export interface DeferredDelete {
  id: string;
  target: string;
  size: number;
  storageClass: string;
  storedAt: string;
  deleteAt: string;
}

interface DeferredFile {
  version: 1;
  deletes: DeferredDelete[];
}

export class DeferredDeletes {
  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  all(): DeferredDelete[] {
    return readStateFile<DeferredFile>(this.file, () => ({ version: 1, deletes: [] }), (f) => f.version === 1 && Array.isArray(f.deletes), () => {}).deletes;
  }

  private write(deletes: DeferredDelete[]): void {
    writeFileAtomicSync(this.file, JSON.stringify({ version: 1, deletes }, null, 2) + '\n');
  }

  defer(target: string, state: S3ObjectState, deleteAt: number): void {
    const entry: DeferredDelete = {
      id: state.name, target, size: state.size, storageClass: state.storageClass,
      storedAt: new Date(state.lastModified ?? Date.now()).toISOString(), deleteAt: new Date(deleteAt).toISOString(),
    };
    this.write([...this.all().filter((d) => !(d.id === entry.id && d.target === target)), entry]);
  }

  /**
   * Sends the deletes that are due on `tiers`; returns how many went. Each entry is
   * dropped before its delete is sent: a tier that finds the object still young
   * defers it again, and a delete that fails is put back for the next run.
   */
  async sendDue(tiers: Tier[], minimumDays: (storageClass: string) => number, log: (line: string) => void, now = Date.now()): Promise<number> {
    let sent = 0;
    for (const d of this.all()) {
      // Due by today's price table, which the user may have set for their provider.
      if (Date.parse(d.storedAt) + minimumDays(d.storageClass) * 86_400_000 > now) continue;
      this.write(this.all().filter((e) => !(e.id === d.id && e.target === d.target)));
      const tier = tiers.find((t) => t.name === d.target);
      // A removed target's deletes go with it: its objects are no longer Hearth's to manage.
      if (!tier) continue;
      try {
        await tier.delete(d.id);
        sent++;
      } catch (err) {
        this.write([...this.all(), d]);
        log(`deferred delete of ${d.id.slice(0, 12)} on ${d.target} failed, kept for the next run: ${(err as Error).message}`);
      }
    }
    return sent;
  }
}
