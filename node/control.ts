// The control API: CLI commands talk to a running daemon over a Unix socket in the
// home (mode 0600, so only the home's owner can drive it). One request per
// connection, as JSON lines:
//   client → {"op": "backup", "args": {...}}
//   daemon → {"progress": {...}} | {"log": "..."}   (any number, while it works)
//   daemon → {"result": ...} | {"error": "one line"}  (last line; then it closes)
// A client that goes away before the answer (Ctrl-C) aborts the handler's signal.
import { chmodSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { ProgressSink, ProgressState } from './progress.ts';

export interface ControlRequest {
  op: string;
  args: Record<string, unknown>;
}

/** `clientGone` is aborted when the client closes the connection before the answer. */
export type ControlHandler = (request: ControlRequest, progress: ProgressSink, clientGone: AbortSignal) => Promise<unknown>;

const MAX_REQUEST_BYTES = 1 << 20;

export class ControlServer {
  private readonly server: Server;
  private readonly path: string;

  private constructor(server: Server, path: string) {
    this.server = server;
    this.path = path;
  }

  static async listen(path: string, handler: ControlHandler): Promise<ControlServer> {
    // A socket file left by a crashed daemon would make listen() fail; the home
    // lock (held by the caller) proves no other daemon uses it.
    rmSync(path, { force: true });
    const server = createServer((socket) => serve(socket, handler));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
    return new ControlServer(server, path);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }
}

function serve(socket: Socket, handler: ControlHandler): void {
  const send = (doc: unknown): void => {
    if (!socket.destroyed) socket.write(JSON.stringify(doc) + '\n');
  };
  let size = 0;
  let line = '';
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) {
      send({ error: 'control request too large' });
      socket.destroy();
      return;
    }
    line += chunk.toString('utf8');
    const nl = line.indexOf('\n');
    if (nl < 0) return;
    socket.off('data', onData);
    let request: ControlRequest;
    try {
      request = JSON.parse(line.slice(0, nl)) as ControlRequest;
      if (typeof request.op !== 'string') throw new Error('missing op');
    } catch (err) {
      send({ error: `malformed control request: ${(err as Error).message}` });
      socket.end();
      return;
    }
    const progress: ProgressSink = {
      update: (state: ProgressState) => send({ progress: state }),
      log: (message: string) => send({ log: message }),
      done: () => {},
    };
    const clientGone = new AbortController();
    socket.once('close', () => clientGone.abort(new Error('the command was stopped (its terminal closed the control connection)')));
    handler(request, throttled(progress), clientGone.signal).then(
      (result) => {
        send({ result: result ?? null });
        socket.end();
      },
      (err: Error) => {
        send({ error: err.message ?? String(err) });
        socket.end();
      },
    );
  };
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
}

function throttled(sink: ProgressSink, intervalMs = 250): ProgressSink {
  let last = 0;
  return {
    update(state) {
      const now = Date.now();
      if (now - last < intervalMs) return;
      last = now;
      sink.update(state);
    },
    log: (m) => sink.log(m),
    done: () => sink.done(),
  };
}

/** Connect to the daemon's socket; undefined when no daemon listens there. */
export function connectControl(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', () => resolve(undefined));
  });
}

/** Send one request on a connected socket; progress is passed on as it arrives. */
export async function callControl(socket: Socket, request: ControlRequest, progress: ProgressSink): Promise<unknown> {
  socket.write(JSON.stringify(request) + '\n');
  const lines = createInterface({ input: socket });
  try {
    for await (const line of lines) {
      const doc = JSON.parse(line) as { progress?: ProgressState; log?: string; result?: unknown; error?: string };
      if (doc.progress) progress.update(doc.progress);
      else if (doc.log !== undefined) progress.log(doc.log);
      else if ('result' in doc) return doc.result;
      else if (doc.error !== undefined) throw new Error(doc.error);
    }
  } finally {
    lines.close();
    socket.destroy();
    progress.done();
  }
  throw new Error('the daemon closed the control connection without answering: see its log');
}
