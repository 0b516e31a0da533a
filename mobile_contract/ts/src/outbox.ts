/**
 * The phone's durable state in one JSON file: the queue, the tokens, the counters, the files to
 * upload and the offline copy of pulled data.
 *
 * Every change is written to a temporary file, flushed to disk and renamed over the old one, so a
 * crash or a killed app leaves either the old state or the new one, never half of either: an action
 * is queued (with its id and seq) only once `save()` has returned, and a restarted app that opens
 * the same file resumes exactly where the last one stopped.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";

import type { ActionEnvelope, Outcome } from "./types.js";

/** One queued action: the envelope as it will be sent, every time, and the answer once there is one. */
export interface QueuedAction {
  envelope: ActionEnvelope;
  /** SHA-256 of each file the action needs on the server before it can apply. */
  blobs: string[];
  done: boolean;
  outcome: Outcome | null;
  /** When the answer came (phone clock, ISO 8601); acknowledged actions are kept for a while. */
  ackedAt: string | null;
}

/** `pending`: not on the server yet; `stored`: uploaded; `refused`: the server will never take it. */
export type FileState = "pending" | "stored" | "refused";

export interface AttachedFile {
  path: string;
  state: FileState;
}

export interface StoredEntity {
  version: number;
  data: unknown;
}

export interface OutboxState {
  format: 1;
  deviceId: string;
  accessToken: string | null;
  refreshToken: string | null;
  nextSeq: number;
  lastAppliedSeq: number;
  serverEpoch: string | null;
  cursor: string | null;
  actions: QueuedAction[];
  files: Record<string, AttachedFile>;
  /** entity → id → what the last pull said. */
  store: Record<string, Record<string, StoredEntity>>;
}

export function newState(deviceId: string): OutboxState {
  return {
    format: 1,
    deviceId,
    accessToken: null,
    refreshToken: null,
    nextSeq: 1,
    lastAppliedSeq: 0,
    serverEpoch: null,
    cursor: null,
    actions: [],
    files: {},
    store: {},
  };
}

/** The state in `path`, or `null` when there is no such file yet (a fresh install). */
export function loadState(path: string): OutboxState | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return null;
    }
    throw error;
  }
  const state = JSON.parse(text) as OutboxState;
  if (state.format !== 1) {
    throw new Error(`${path}: outbox format ${String(state.format)} is not one this client reads`);
  }
  return state;
}

/** Write `content` to `path` atomically and durably (temporary file, fsync, rename). */
export function writeAtomically(path: string, content: string | Uint8Array): void {
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeSync(fd, typeof content === "string" ? Buffer.from(content, "utf8") : content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

export function saveState(path: string, state: OutboxState): void {
  writeAtomically(path, JSON.stringify(state));
}
