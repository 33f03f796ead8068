// Progress of long operations: a redrawn line on a TTY, JSON lines on stderr with
// --json, nothing otherwise (a cron job's mail stays short). Rate and ETA come
// from the bytes done so far.

export interface ProgressState {
  phase: string;
  files: number;
  bytes: number;
  totalFiles?: number;
  totalBytes?: number;
}

export interface ProgressSink {
  update(state: ProgressState): void;
  log(message: string): void;
  done(): void;
}

export function createProgress(options: { json: boolean; stream?: NodeJS.WriteStream; intervalMs?: number }): ProgressSink {
  const stream = options.stream ?? process.stderr;
  const interval = options.intervalMs ?? (options.json ? 1000 : 200);
  const started = Date.now();
  let last = 0;
  let drawn = false;

  const render = (s: ProgressState, now: number): string => {
    const secs = Math.max((now - started) / 1000, 0.001);
    const rate = s.bytes / secs;
    const eta = s.totalBytes && rate > 0 ? Math.max(0, (s.totalBytes - s.bytes) / rate) : undefined;
    if (options.json) {
      return JSON.stringify({ type: 'progress', phase: s.phase, files: s.files, bytes: s.bytes, totalFiles: s.totalFiles, totalBytes: s.totalBytes, bytesPerSecond: Math.round(rate), etaSeconds: eta === undefined ? undefined : Math.round(eta) });
    }
    const total = s.totalBytes ? ` of ${mb(s.totalBytes)}` : '';
    const etaText = eta === undefined ? '' : `, ETA ${formatEta(eta)}`;
    return `${s.phase}: ${s.files} files, ${mb(s.bytes)}${total}, ${mb(rate)}/s${etaText}`;
  };

  return {
    update(state) {
      const now = Date.now();
      if (now - last < interval) return;
      last = now;
      if (options.json) stream.write(render(state, now) + '\n');
      else if (stream.isTTY) {
        stream.write(`\r\x1b[K${render(state, now)}`);
        drawn = true;
      }
    },
    log(message) {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
      stream.write(options.json ? JSON.stringify({ type: 'log', message }) + '\n' : message + '\n');
    },
    done() {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function formatEta(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)}s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}

export const silentProgress: ProgressSink = { update() {}, log() {}, done() {} };
