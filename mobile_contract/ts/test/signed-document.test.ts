/**
 * A signed document: the phone computes `content_sha256` with the TypeScript canonical JSON, the
 * server computes its own over the content it received, and the signature counts only when they
 * agree. The content holds what languages serialise differently: `1e-7` (Python alone would write
 * `1e-07`), a float with an integral value, Chinese text and an astral-plane emoji.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import type { components } from "../src/api.js";
import { contentSha256 } from "../src/canonical.js";
import { newPhone, orderOf, PASSWORD, SKIP } from "./helpers.js";

test("a document signed with the TypeScript content_sha256 verifies on the server", { skip: SKIP }, async () => {
  const { desk, order } = await orderOf("tech2", "热量表校验");
  const phone = newPhone();
  await phone.login("tech2", PASSWORD);
  const documentId = randomUUID();
  const content = {
    work_order_id: order.id,
    operation: "swap",
    meter_id: "HM-2019-0007",
    new_meter_id: "HM-2026-0042",
    reading_before: 12345.0,
    reading_after: 1e-7,
    resident_name: "李秀英 🏠",
  };
  const sha256 = contentSha256(content);
  const issue = phone.enqueue({
    type: "document.issue",
    v: 1,
    payload: { document: { type: "meter", id: documentId }, content },
  });
  const sign = phone.enqueue({
    type: "evidence.signature",
    v: 1,
    payload: {
      document: { type: "meter", id: documentId },
      signer_name: "李秀英 🏠",
      signer_role: "resident",
      content_sha256: sha256,
      strokes: [
        [
          [10, 12, 0],
          [48.5, 30, 120],
        ],
      ],
    },
  });

  const report = await phone.push();

  assert.equal(phone.outcome(issue.id)?.outcome?.status, "applied");
  const signed = phone.outcome(sign.id)?.outcome;
  assert.deepEqual(signed, { status: "applied", code: null, message: null, current: null });
  assert.equal(report.applied, 2);
  const held = await desk.json<components["schemas"]["DocumentRead"]>("GET", `/api/v1/documents/${documentId}`);
  assert.equal(held.content_sha256, sha256, "the server's hash of the content is the phone's");
  assert.equal(held.verification.status, "valid");
  assert.equal(held.verification.computed_sha256, sha256);
});
