/**
 * Canonical JSON (RFC 8785) and `content_sha256`: the bytes a signature covers.
 *
 * The phone hashes a document's content before the resident signs and the server hashes the same
 * content when the document is issued; a signature only counts when both agree, byte for byte.
 * RFC 8785 is what JavaScript does natively: numbers as `Number.prototype.toString` writes them,
 * strings as `JSON.stringify` escapes them, object keys sorted by UTF-16 code units (the default
 * `Array.prototype.sort`). What is left to do here is the sorting, refusing what cannot be
 * signed, and not letting `JSON.stringify` quietly drop or convert values.
 *
 * The worked cases in `mobile_contract/vectors/canonical_json.json` are checked by
 * `test/canonical.test.ts`.
 */
import { createHash } from "node:crypto";

/** A value that can be signed: plain JSON. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Raised for content that has no canonical form (NaN, infinities, lone surrogates, non-JSON values). */
export class NotCanonicalisable extends Error {
  override name = "NotCanonicalisable";
}

// A UTF-16 unit of a surrogate pair without its other half: it has no UTF-8 encoding.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function writeString(text: string, where: string): string {
  if (LONE_SURROGATE.test(text)) {
    throw new NotCanonicalisable(`${where}: a lone surrogate (half an emoji) cannot be signed`);
  }
  return JSON.stringify(text);
}

function write(value: unknown, where: string): string {
  if (value === null || value === true || value === false) {
    return String(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new NotCanonicalisable(`${where}: NaN and infinities cannot be signed`);
    }
    return JSON.stringify(value); // ECMAScript's shortest round-trip form; -0 is written 0
  }
  if (typeof value === "string") {
    return writeString(value, where);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item, index) => write(item, `${where}[${index}]`)).join(",")}]`;
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const members = Object.entries(value as Record<string, unknown>);
    members.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)); // `<` compares UTF-16 code units
    const written = members.map(([key, item]) => `${writeString(key, where)}:${write(item, `${where}.${key}`)}`);
    return `{${written.join(",")}}`;
  }
  // undefined, functions, bigint, Date, Map…: JSON.stringify would drop or reshape them silently.
  const kind = typeof value === "object" ? Object.prototype.toString.call(value) : typeof value;
  throw new NotCanonicalisable(`${where}: a ${kind} is not JSON (send times as RFC 3339 strings)`);
}

/** The canonical JSON text of `content`. */
export function canonical(content: unknown): string {
  return write(content, "$");
}

/** The UTF-8 bytes of the canonical JSON: what a signature covers. */
export function canonicalBytes(content: unknown): Uint8Array {
  return new TextEncoder().encode(canonical(content));
}

/** Lower-case hex SHA-256 of the canonical bytes: the `content_sha256` of `evidence.signature`. */
export function contentSha256(content: unknown): string {
  return createHash("sha256").update(canonicalBytes(content)).digest("hex");
}
