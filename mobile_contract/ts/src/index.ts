/** HeatCrew's mobile contract in TypeScript: the generated API types, canonical JSON, the outbox client. */
export type { components, operations, paths } from "./api.js";
export { canonical, canonicalBytes, contentSha256, NotCanonicalisable } from "./canonical.js";
export type { JsonValue } from "./canonical.js";
export { LockedOut, Offline, OutboxClient } from "./client.js";
export type { ClientOptions, PullReport, PushReport, QueueOptions } from "./client.js";
export type * from "./types.js";
