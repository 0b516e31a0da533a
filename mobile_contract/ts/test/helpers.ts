/**
 * What the scenarios share: the live server, phones with their own state files, the office's
 * side (a dispatcher's plain HTTP calls), a network that loses answers, and real PNG photos.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";

import { OutboxClient } from "../src/client.js";
import type { ClientOptions } from "../src/client.js";
import type { components } from "../src/api.js";
import type { TokenPair } from "../src/types.js";

/** The server under test, e.g. `http://127.0.0.1:8000`; without it the scenarios are skipped. */
export const SERVER = process.env["HEATCREW_URL"] ?? "";
export const SKIP = SERVER === "" ? "HEATCREW_URL is not set: no live HeatCrew server to run against" : false;
export const PASSWORD = process.env["HEATCREW_DEMO_PASSWORD"] ?? "demo-password";
export const APP_VERSION = "1.4.2";

export type WorkOrderRead = components["schemas"]["WorkOrderRead"];
export type WorkOrderDetail = components["schemas"]["WorkOrderDetail"];
export type TimelineEvent = WorkOrderDetail["timeline"][number];

/** A phone with a fresh install: its own state file in a new temporary directory. */
export function newPhone(options: Partial<ClientOptions> = {}): OutboxClient {
  const dir = mkdtempSync(join(tmpdir(), "heatcrew-phone-"));
  const statePath = join(dir, "outbox.json");
  return new OutboxClient({ baseUrl: SERVER, statePath, appVersion: APP_VERSION, ...options });
}

/** The same install started again (the app was killed): same state file, new process state. */
export function restart(phone: OutboxClient, options: Partial<ClientOptions> = {}): OutboxClient {
  return new OutboxClient({ baseUrl: SERVER, statePath: phone.statePath, appVersion: APP_VERSION, ...options });
}

/** Someone at a desk (dispatcher, supervisor) or the phone user checking the server directly. */
export class Desk {
  private constructor(
    private tokens: { access_token: string; refresh_token: string },
    private readonly deviceId: string,
    readonly userId: string,
  ) {}

  static async login(username: string): Promise<Desk> {
    const deviceId = `desk-${username}-${Math.random().toString(36).slice(2, 10)}`;
    const response = await fetch(`${SERVER}/api/v1/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-App-Version": APP_VERSION },
      body: JSON.stringify({
        username,
        password: PASSWORD,
        device: { id: deviceId, platform: "web", app_version: APP_VERSION },
      }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const tokens = (await response.json()) as TokenPair;
    return new Desk(tokens, deviceId, tokens.user.id);
  }

  /** One JSON call (or none with no body). */
  async call(method: string, path: string, body?: unknown): Promise<Response> {
    if (body === undefined) {
      return this.send(method, path, null, {});
    }
    return this.send(method, path, JSON.stringify(body), { "Content-Type": "application/json" });
  }

  /** Send raw bytes, as an interrupted phone upload would have. */
  async upload(path: string, bytes: Uint8Array, headers: Record<string, string>): Promise<Response> {
    return this.send("PUT", path, bytes, { "Content-Type": "application/octet-stream", ...headers });
  }

  /** An expired access token (the server under test keeps them briefly) is refreshed, then resent. */
  private async send(
    method: string,
    path: string,
    body: string | Uint8Array | null,
    headers: Record<string, string>,
  ): Promise<Response> {
    for (let attempt = 0; ; attempt += 1) {
      const response = await fetch(`${SERVER}${path}`, {
        method,
        body,
        headers: {
          Authorization: `Bearer ${this.tokens.access_token}`,
          "X-Device-Id": this.deviceId,
          "X-App-Version": APP_VERSION,
          ...headers,
        },
      });
      if (response.status !== 401 || attempt > 0) {
        return response;
      }
      const refreshed = await fetch(`${SERVER}/api/v1/auth/refresh`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-App-Version": APP_VERSION },
        body: JSON.stringify({ refresh_token: this.tokens.refresh_token, device_id: this.deviceId }),
      });
      assert.equal(refreshed.status, 200, await refreshed.clone().text());
      this.tokens = (await refreshed.json()) as TokenPair;
    }
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.call(method, path, body);
    const text = await response.text();
    assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as T;
  }

  async orders(): Promise<WorkOrderRead[]> {
    return this.json<WorkOrderRead[]>("GET", "/api/v1/work-orders/?limit=200");
  }

  async order(id: string): Promise<WorkOrderDetail> {
    return this.json<WorkOrderDetail>("GET", `/api/v1/work-orders/${id}`);
  }
}

/**
 * `username`'s own demo order whose description starts with `description`, as the server holds it.
 *
 * Each scenario works on its own order, so that they can run side by side on one server.
 */
export async function orderOf(
  username: string,
  description: string,
): Promise<{ desk: Desk; order: WorkOrderRead }> {
  const desk = await Desk.login(username);
  const order = (await desk.orders()).find(
    (candidate) => candidate.assignee_id === desk.userId && candidate.description.startsWith(description),
  );
  assert.ok(order, `${username} has no order "${description}…" in the demo data`);
  return { desk, order };
}

/** The notes on an order, in the order the server recorded them. */
export function notes(detail: WorkOrderDetail): string[] {
  return detail.timeline
    .filter((event) => event.type === "note")
    .map((event) => String((event.data as { text?: unknown } | null)?.text));
}

/**
 * A network between the phone and the server that can lose answers: the request reaches the
 * server and is processed, but the phone never hears back (a tunnel, a lift, a dead cell).
 */
export class FlakyNetwork {
  readonly requests: { method: string; url: string; body: string | null; headers: Headers }[] = [];
  private readonly rules: { matches: (method: string, url: string) => boolean; times: number }[] = [];
  private readonly rewrites: ((method: string, url: string, body: string) => string)[] = [];

  /** Lose the answer to the next `times` requests matching `method` and the path `pathPart`. */
  loseAnswer(method: string, pathPart: string, times = 1): void {
    this.rules.push({ matches: (m, url) => m === method && url.includes(pathPart), times });
  }

  /** Change the bodies on their way to the server (`rewrite` returns the new body text). */
  rewriteOnce(rewrite: (method: string, url: string, body: string) => string | null): void {
    const once = (method: string, url: string, body: string): string => {
      const changed = rewrite(method, url, body);
      if (changed === null) {
        return body;
      }
      this.rewrites.splice(this.rewrites.indexOf(once), 1);
      return changed;
    };
    this.rewrites.push(once);
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const method = init?.method ?? "GET";
    const url = String(input);
    let body = init?.body ?? null;
    if (typeof body === "string") {
      for (const rewrite of [...this.rewrites]) {
        body = rewrite(method, url, body);
      }
    }
    const headers = new Headers(init?.headers);
    const bytes = body instanceof Uint8Array ? `<${body.byteLength} bytes>` : null;
    const sent = typeof body === "string" ? body : bytes;
    this.requests.push({ method, url, body: sent, headers });
    const response = await fetch(input, { ...init, body });
    const rule = this.rules.find((candidate) => candidate.times > 0 && candidate.matches(method, url));
    if (rule !== undefined) {
      rule.times -= 1;
      await response.arrayBuffer(); // the server finished; only the phone does not hear it
      throw new TypeError("fetch failed: the connection dropped before the answer arrived");
    }
    return response;
  };

  pushBodies(): { actions: { seq: number; id: string }[] }[] {
    return this.requests
      .filter((request) => request.url.endsWith("/api/v1/sync/push") && request.body !== null)
      .map((request) => JSON.parse(request.body ?? "{}") as { actions: { seq: number; id: string }[] });
  }
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) {
    c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) {
    c = (CRC_TABLE[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A real PNG photo of one colour (so every call gives a different file), as a phone's camera makes. */
export function photo(width = 32, height = 24): Buffer {
  const [r, g, b] = [0, 0, 0].map(() => Math.floor(Math.random() * 256));
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      rows.set([r ?? 0, g ?? 0, (b ?? 0) ^ ((x + y) & 1)], y * (width * 3 + 1) + 1 + x * 3);
    }
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const chunks = [chunk("IHDR", header), chunk("IDAT", deflateSync(rows)), chunk("IEND", new Uint8Array())];
  return Buffer.concat([signature, ...chunks]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
