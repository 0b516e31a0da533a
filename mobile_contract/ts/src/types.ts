/**
 * The wire types the client uses, all taken from the generated `api.d.ts` (itself generated from
 * the server's OpenAPI document), so that a change on the server shows up here as a compile error.
 *
 * When the document describes the push body as a union of one envelope per `(type, v)`, each with
 * its own payload schema, `ActionDraft` becomes that union too and a payload that does not fit its
 * type no longer compiles; until then it accepts any payload.
 */
import type { components, paths } from "./api.js";

type Schemas = components["schemas"];

export type ActionEnvelope = Schemas["ActionEnvelope"];
export type ActionResult = Schemas["ActionResult"];
export type Change = Schemas["Change"];
export type LoginRequest = Schemas["LoginRequest"];
export type PullResponse = Schemas["PullResponse"];
export type PushRequest = Schemas["PushRequest"];
export type PushResponse = Schemas["PushResponse"];
export type RefreshRequest = Schemas["RefreshRequest"];
export type Status = Schemas["Status"];
export type TokenPair = Schemas["TokenPair"];
export type SyncStatus = paths["/api/v1/sync/status"]["get"]["responses"][200]["content"]["application/json"];

/** `Omit` applied to each member of a union separately, so that each keeps its own `type`, `v` and payload. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** What the app says when the crew does something: the envelope without what the client adds. */
export type ActionDraft = DistributiveOmit<ActionEnvelope, "id" | "seq" | "occurred_at">;

/** The action types the server documents (a plain `string` while the document lists none). */
export type ActionType = ActionEnvelope["type"];

/** An answer the server sent for an action, kept with it on the phone. */
export interface Outcome {
  status: Status;
  code: string | null;
  message: string | null;
  current: ActionResult["current"] | null;
}

/** The `{code, message, detail}` body of every error the server answers. */
export interface ErrorBody {
  code: string;
  message: string;
  detail?: unknown;
}
