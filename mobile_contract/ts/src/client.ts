/**
 * The reference offline client in TypeScript: how a phone should queue, upload, push and pull.
 *
 * It has the semantics of the Python reference client (`mobile_contract/client.py`) and of
 * `docs/PHONE.md`. Everything the crew does becomes a queued action *before* anything is sent: its
 * id (a UUID) and its `seq` are fixed by `enqueue` and never change. `push()` uploads the files the
 * queued actions need, sends every action not answered yet from the server's
 * `last_applied_seq + 1`, and handles every status; a lost answer is simply sent again and
 * answered `duplicate`. `pull()` follows the change feed into an offline copy. The state lives in
 * one JSON file written atomically, so a restarted app resumes where the last one stopped.
 *
 * Node 20, no dependencies: `fetch`, `node:crypto`, `node:fs`.
 */
import { createHash, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { loadState, newState, saveState, writeAtomically } from "./outbox.js";
import type { OutboxState, QueuedAction, StoredEntity } from "./outbox.js";
import type {
  ActionDraft,
  ActionEnvelope,
  ActionResult,
  ErrorBody,
  LoginRequest,
  Outcome,
  PullResponse,
  PushRequest,
  PushResponse,
  RefreshRequest,
  Status,
  SyncStatus,
  TokenPair,
} from "./types.js";

/** No answer from the server (no network, timeout, lost answer, 5xx). Everything stays queued. */
export class Offline extends Error {
  override name = "Offline";
}

/** The server refuses this device or user (revoked, disabled, logged out…). The queue is kept. */
export class LockedOut extends Error {
  override name = "LockedOut";
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(`${code}: ${message}`);
  }
}

export interface ClientOptions {
  /** The server, e.g. `https://heatcrew.example.com` (no trailing slash needed). */
  baseUrl: string;
  /** The JSON file that holds the queue and everything else; created on first use. */
  statePath: string;
  /** Where attached files are kept until uploaded (default: `<statePath>.files`). */
  filesDir?: string;
  /** Made once per install; only used when `statePath` does not exist yet. */
  deviceId?: string;
  platform?: string;
  /** Sent as `X-App-Version` on every request and with the login. */
  appVersion: string;
  /** Actions per push (the server takes at most 500). */
  batchSize?: number;
  /** The phone's clock. */
  clock?: () => Date;
  /** The HTTP client; tests pass one that loses answers. */
  fetch?: typeof fetch;
}

export interface PushReport {
  sent: number;
  applied: number;
  duplicates: number;
  rejected: number;
  conflicts: number;
  waiting: number;
  outOfOrder: number;
  requests: number;
  /** action id → the status of its last answer. */
  statuses: Record<string, Status>;
}

export interface PullReport {
  changes: number;
  resets: number;
  pages: number;
}

export interface QueueOptions {
  /** When it happened (default: now, by the phone's clock). */
  occurredAt?: Date;
  /** The files it needs uploaded first (default: the payload's `blob`, if any). */
  blobs?: string[];
}

interface RequestOptions {
  authenticated?: boolean;
  json?: unknown;
  body?: Uint8Array;
  headers?: Record<string, string>;
  query?: Record<string, string>;
}

type UploadOutcome = "stored" | "refused" | "later";

const DONE: ReadonlySet<string> = new Set(["applied", "duplicate", "rejected", "conflict"]);
const KEEP_ACKNOWLEDGED_MS = 14 * 24 * 3600 * 1000;
const UPLOAD_OFFSET = "Upload-Offset";

function iso(moment: Date): string {
  return moment.toISOString();
}

/** One phone: its device id, its tokens, its queue and its offline copy of the data. */
export class OutboxClient {
  readonly baseUrl: string;
  readonly appVersion: string;
  readonly platform: string;
  readonly batchSize: number;
  readonly statePath: string;
  private readonly filesDir: string;
  private readonly clock: () => Date;
  private readonly http: typeof fetch;
  private readonly state: OutboxState;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.appVersion = options.appVersion;
    this.platform = options.platform ?? "android";
    this.batchSize = options.batchSize ?? 100;
    this.statePath = options.statePath;
    this.filesDir = options.filesDir ?? `${options.statePath}.files`;
    this.clock = options.clock ?? (() => new Date());
    this.http = options.fetch ?? fetch;
    mkdirSync(this.filesDir, { recursive: true });
    const loaded = loadState(this.statePath);
    this.state = loaded ?? newState(options.deviceId ?? `dev-${randomUUID()}`);
    if (loaded === null) {
      this.save();
    }
  }

  get deviceId(): string {
    return this.state.deviceId;
  }

  get lastAppliedSeq(): number {
    return this.state.lastAppliedSeq;
  }

  get serverEpoch(): string | null {
    return this.state.serverEpoch;
  }

  private save(): void {
    saveState(this.statePath, this.state);
  }

  // ------------------------------------------------------------------ HTTP

  private async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const authenticated = options.authenticated ?? true;
    for (let attempt = 0; ; attempt += 1) {
      const response = await this.once(method, path, options, authenticated);
      if (response.status === 401 && authenticated && attempt === 0) {
        const error = await errorOf(response);
        // An answer to HEAD has no body to say why; a refresh tells (a revoked session cannot refresh).
        if (error.code === "token_expired" || method === "HEAD") {
          await this.refresh(); // a week offline: the queue is resent untouched with a new token
          continue;
        }
        throw new LockedOut(error.code, error.message, 401);
      }
      if (response.status === 401) {
        const error = await errorOf(response);
        throw new LockedOut(error.code, error.message, 401);
      }
      if (response.status >= 500) {
        throw new Offline(`server error ${response.status}`);
      }
      return response;
    }
  }

  private async once(
    method: string,
    path: string,
    options: RequestOptions,
    authenticated: boolean,
  ): Promise<Response> {
    const headers: Record<string, string> = { "X-App-Version": this.appVersion, ...options.headers };
    if (authenticated) {
      headers["Authorization"] = `Bearer ${this.state.accessToken ?? ""}`;
      headers["X-Device-Id"] = this.state.deviceId;
    }
    let body: string | Uint8Array | undefined = options.body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const query = options.query ? `?${new URLSearchParams(options.query).toString()}` : "";
    try {
      return await this.http(`${this.baseUrl}${path}${query}`, { method, headers, body: body ?? null });
    } catch (error) {
      throw new Offline(`no answer to ${method} ${path}: ${String(error)}`);
    }
  }

  // ------------------------------------------------------------------ auth

  /** Log in with this device; keeps the token pair. */
  async login(username: string, password: string): Promise<TokenPair> {
    const body: LoginRequest = {
      username,
      password,
      device: { id: this.state.deviceId, platform: this.platform, app_version: this.appVersion },
    };
    const response = await this.request("POST", "/api/v1/auth/login", { json: body, authenticated: false });
    if (response.status !== 200) {
      const error = await errorOf(response);
      throw new LockedOut(error.code, error.message, response.status);
    }
    const tokens = (await response.json()) as TokenPair;
    this.keepTokens(tokens);
    return tokens;
  }

  private keepTokens(tokens: TokenPair): void {
    this.state.accessToken = tokens.access_token;
    this.state.refreshToken = tokens.refresh_token;
    this.save(); // the new pair is kept before anything else: the old refresh token is spent
  }

  /**
   * Spend the refresh token for a new pair.
   *
   * If the answer is lost, the same token is sent once more at once: within the server's refresh
   * grace (60 s after its first use, while its successor is unused) it answers a fresh pair again.
   * Past that the error is `Offline` and the old token is kept for the next try; it is never
   * thrown away on a network error, and a `429` is a reason to wait, not to log out.
   */
  private async refresh(): Promise<void> {
    const token = this.state.refreshToken;
    if (token === null) {
      throw new LockedOut("not_authenticated", "log in first", 401);
    }
    const body: RefreshRequest = { refresh_token: token, device_id: this.state.deviceId };
    let response: Response | undefined;
    for (let attempt = 0; attempt < 2 && response === undefined; attempt += 1) {
      try {
        response = await this.request("POST", "/api/v1/auth/refresh", { json: body, authenticated: false });
      } catch (error) {
        if (!(error instanceof Offline) || attempt === 1) {
          throw error;
        }
      }
    }
    if (response === undefined) {
      throw new Offline("refresh: no answer");
    }
    if (response.status === 429) {
      throw new Offline(`refresh rate-limited; retry after ${response.headers.get("retry-after") ?? "?"} s`);
    }
    if (response.status !== 200) {
      const error = await errorOf(response);
      throw new LockedOut(error.code, error.message, response.status);
    }
    this.keepTokens((await response.json()) as TokenPair);
  }

  // ------------------------------------------------------------------ the queue

  /** Keep a photo or signature image with the phone until it is uploaded; returns its SHA-256. */
  attachFile(content: Uint8Array): string {
    const sha256 = createHash("sha256").update(content).digest("hex");
    const path = join(this.filesDir, sha256);
    if (!existsSync(path)) {
      writeAtomically(path, content);
    }
    const known = this.state.files[sha256];
    if (known === undefined || known.state === "pending") {
      this.state.files[sha256] = { path, state: "pending" };
      this.save();
    }
    return sha256;
  }

  /** Queue one action durably; its id and seq are fixed here, before any network. */
  enqueue(draft: ActionDraft, options: QueueOptions = {}): { id: string; seq: number } {
    const seq = this.state.nextSeq;
    const envelope = {
      ...draft,
      id: randomUUID(),
      seq,
      occurred_at: iso(options.occurredAt ?? this.clock()),
    } as ActionEnvelope;
    const queued: QueuedAction = {
      envelope,
      blobs: options.blobs ?? blobOf(draft.payload),
      done: false,
      outcome: null,
      ackedAt: null,
    };
    this.state.actions.push(queued);
    this.state.nextSeq = seq + 1;
    this.save();
    return { id: envelope.id, seq };
  }

  /** Actions without a final answer yet, in seq order. */
  pending(): ActionEnvelope[] {
    return this.state.actions.filter((action) => !action.done).map((action) => action.envelope);
  }

  /** What the server answered for one action: the phone shows this, never a guess. */
  outcome(actionId: string): { seq: number; synced: boolean; outcome: Outcome | null } | null {
    const action = this.state.actions.find((candidate) => candidate.envelope.id === actionId);
    return action ? { seq: action.envelope.seq, synced: action.done, outcome: action.outcome } : null;
  }

  // ------------------------------------------------------------------ push

  async sync(): Promise<[PushReport, PullReport]> {
    return [await this.push(), await this.pull()];
  }

  async push(): Promise<PushReport> {
    const report: PushReport = {
      sent: 0,
      applied: 0,
      duplicates: 0,
      rejected: 0,
      conflicts: 0,
      waiting: 0,
      outOfOrder: 0,
      requests: 0,
      statuses: {},
    };
    let stuckRounds = 0;
    for (;;) {
      const batch = this.nextBatch();
      if (batch.length === 0) {
        break;
      }
      await this.uploadFilesFor(batch);
      const body: PushRequest = {
        device_id: this.state.deviceId,
        sent_at: iso(this.clock()),
        actions: batch.map((action) => action.envelope),
      };
      report.requests += 1;
      report.sent += batch.length;
      const response = await this.request("POST", "/api/v1/sync/push", { json: body });
      if (response.status !== 200) {
        const error = await errorOf(response);
        throw new LockedOut(error.code, error.message, response.status);
      }
      const answer = (await response.json()) as PushResponse;
      if (await this.record(answer, report)) {
        stuckRounds = 0;
      } else if (++stuckRounds >= 2) {
        break; // e.g. a photo that cannot be uploaded yet: stop, keep everything for the next sync
      }
    }
    this.forgetOld();
    return report;
  }

  /**
   * Everything not answered yet, from the oldest: including an action at or below the server's
   * counter whose answer never came (it was dropped from a batch the server applied around it):
   * resent, it is answered `duplicate` with its first result.
   */
  private nextBatch(): QueuedAction[] {
    return this.state.actions
      .filter((action) => !action.done || action.envelope.seq > this.state.lastAppliedSeq)
      .slice(0, this.batchSize);
  }

  /** Upload the files a batch needs, in queue order (with a quota, the earliest action's go first). */
  private async uploadFilesFor(batch: QueuedAction[], only?: string[]): Promise<void> {
    const wanted = new Set(only ?? batch.flatMap((action) => action.blobs));
    for (const sha256 of wanted) {
      const file = this.state.files[sha256];
      if (file === undefined || file.state === "refused" || (file.state === "stored" && only === undefined)) {
        continue; // not attached yet (the action waits), refused for good, or already there
      }
      if (!existsSync(file.path)) {
        continue;
      }
      const outcome = await this.upload(sha256, file.path);
      if (outcome === "later") {
        break; // over today's quota: the files and their actions wait for a later sync
      }
      file.state = outcome;
      this.save();
    }
  }

  /**
   * Upload one file, resuming after whatever the server kept of an interrupted attempt.
   *
   * `HEAD` says whether the server holds the file already and otherwise how many bytes of this
   * user's unfinished upload it kept (`Upload-Offset`); only the rest is sent. A server that kept a
   * different part (`409`), or a stalled or partial upload (`408`, `202`), gives the offset to go
   * on from. A dropped connection raises `Offline` and the next sync resumes.
   */
  private async upload(sha256: string, path: string): Promise<UploadOutcome> {
    const head = await this.request("HEAD", `/api/v1/blobs/${sha256}`);
    if (head.status === 200) {
      return "stored";
    }
    const content = readFileSync(path);
    let offset = headerInt(head, UPLOAD_OFFSET);
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (offset > content.length) {
        offset = 0; // not ours to finish (should not happen): start again
      }
      const response = await this.request("PUT", `/api/v1/blobs/${sha256}`, {
        body: content.subarray(offset),
        headers: { "Content-Type": "application/octet-stream" },
        ...(offset > 0 ? { query: { offset: String(offset) } } : {}),
      });
      if (response.status === 200 || response.status === 201) {
        await response.arrayBuffer();
        return "stored";
      }
      const error = await errorOf(response);
      if (response.status === 409 && error.code === "upload_offset_mismatch") {
        offset = headerInt(response, UPLOAD_OFFSET);
        continue;
      }
      if (response.status === 408 || response.status === 202) {
        offset = headerInt(response, UPLOAD_OFFSET);
        continue;
      }
      if (response.status === 429) {
        return "later";
      }
      return response.status >= 400 && response.status < 500 ? "refused" : "later";
    }
    return "later";
  }

  /** Keep every answer of one push; true when the queue moved on. */
  private async record(answer: PushResponse, report: PushReport): Promise<boolean> {
    const before = this.state.lastAppliedSeq;
    const now = iso(this.clock());
    const bySeq = new Map(this.state.actions.map((action) => [action.envelope.seq, action]));
    const missing: string[] = [];
    let answered = 0;
    for (const result of answer.results) {
      report.statuses[result.id] = result.status;
      if (DONE.has(result.status)) {
        answered += 1;
        count(report, result.status);
        const action = bySeq.get(result.seq);
        if (action !== undefined) {
          action.done = true;
          action.outcome = outcomeOf(result);
          action.ackedAt = now;
        }
      } else if (result.status === "waiting") {
        report.waiting += 1;
        missing.push(...(result.missing ?? []));
      } else {
        report.outOfOrder += 1;
      }
    }
    if (answer.last_applied_seq < before) {
      // The server forgot actions it had applied (restored from a backup): they are sent again.
      this.reopenAfter(answer.last_applied_seq);
    }
    this.state.lastAppliedSeq = answer.last_applied_seq;
    this.state.serverEpoch = answer.server_epoch;
    this.save();
    if (missing.length > 0) {
      await this.uploadFilesFor([], missing);
    }
    return answer.last_applied_seq !== before || answered > 0;
  }

  private reopenAfter(seq: number): void {
    for (const action of this.state.actions) {
      if (action.envelope.seq > seq) {
        action.done = false;
        action.ackedAt = null;
      }
    }
  }

  private forgetOld(): void {
    const cutoff = this.clock().getTime() - KEEP_ACKNOWLEDGED_MS;
    const kept = this.state.actions.filter(
      (action) =>
        !action.done ||
        action.ackedAt === null ||
        Date.parse(action.ackedAt) >= cutoff ||
        action.envelope.seq > this.state.lastAppliedSeq,
    );
    if (kept.length !== this.state.actions.length) {
      this.state.actions = kept;
      this.save();
    }
  }

  // ------------------------------------------------------------------ pull

  /** Follow the change feed from the kept cursor; a `reset` replaces the offline copy. */
  async pull(): Promise<PullReport> {
    const report: PullReport = { changes: 0, resets: 0, pages: 0 };
    let reset = false;
    for (;;) {
      const query: Record<string, string> = { limit: "500" };
      if (this.state.cursor !== null) {
        query["cursor"] = this.state.cursor;
      }
      const response = await this.request("GET", "/api/v1/sync/pull", { query });
      if (response.status !== 200) {
        const error = await errorOf(response);
        throw new LockedOut(error.code, error.message, response.status);
      }
      const page = (await response.json()) as PullResponse;
      report.pages += 1;
      if (page.reset) {
        report.resets += 1;
        reset = true;
        this.state.store = {};
      }
      for (const change of page.changes) {
        report.changes += 1;
        const entities = (this.state.store[change.entity] ??= {});
        if (change.op === "remove") {
          delete entities[change.id];
        } else {
          entities[change.id] = { version: change.version, data: change.data ?? null };
        }
      }
      this.state.cursor = page.cursor; // with the page it came with, in one write
      this.save();
      if (!page.has_more) {
        break;
      }
    }
    if (reset) {
      await this.reconcile();
    }
    return report;
  }

  /** After a reset the server may have been restored: resend what it no longer has. */
  private async reconcile(): Promise<void> {
    const response = await this.request("GET", "/api/v1/sync/status");
    if (response.status !== 200) {
      return;
    }
    const status = (await response.json()) as SyncStatus;
    const serverLast = (status as { last_applied_seq?: unknown }).last_applied_seq;
    if (typeof serverLast === "number" && serverLast < this.state.lastAppliedSeq) {
      this.reopenAfter(serverLast);
      this.state.lastAppliedSeq = serverLast;
      this.save();
    }
  }

  /** The offline copy of one entity: what the phone shows without a network. */
  local(entity: string): Record<string, StoredEntity> {
    return this.state.store[entity] ?? {};
  }
}

function count(report: PushReport, status: Status): void {
  if (status === "applied") report.applied += 1;
  else if (status === "duplicate") report.duplicates += 1;
  else if (status === "rejected") report.rejected += 1;
  else if (status === "conflict") report.conflicts += 1;
}

function outcomeOf(result: ActionResult): Outcome {
  // A duplicate carries the first answer: that is what the phone keeps and shows.
  const status = result.status === "duplicate" && result.original_status ? result.original_status : result.status;
  return { status, code: result.code ?? null, message: result.message ?? null, current: result.current ?? null };
}

function blobOf(payload: unknown): string[] {
  if (typeof payload === "object" && payload !== null && "blob" in payload) {
    const blob: unknown = payload.blob;
    return typeof blob === "string" && blob.length > 0 ? [blob] : [];
  }
  return [];
}

function headerInt(response: Response, name: string): number {
  const value = Number.parseInt(response.headers.get(name) ?? "0", 10);
  return Number.isFinite(value) && value > 0 ? value : 0;
}

/** The `{code, message}` of an error answer, whatever its body turned out to be. */
async function errorOf(response: Response): Promise<ErrorBody> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as Partial<ErrorBody>;
    return {
      code: String(body.code ?? response.status),
      message: String(body.message ?? ""),
      detail: body.detail,
    };
  } catch {
    return { code: String(response.status), message: text.slice(0, 200) };
  }
}
