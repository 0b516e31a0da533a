/**
 * A waiting photo: the photo action was queued before its file was ready to upload. The server
 * answers `waiting / blob_missing` with the hash and applies nothing; once the file is there the
 * client uploads it and sends the action again, and it is applied.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { orderOf, newPhone, PASSWORD, photo, SKIP } from "./helpers.js";

test("a photo pushed before its upload waits, then applies once uploaded", { skip: SKIP }, async () => {
  const { desk, order } = await orderOf("tech1", "单元立管阀门检查");
  const phone = newPhone();
  await phone.login("tech1", PASSWORD);
  const image = photo();
  const sha256 = createHash("sha256").update(image).digest("hex");
  const action = phone.enqueue({
    type: "evidence.photo",
    v: 1,
    payload: { work_order_id: order.id, blob: sha256, purpose: "after", taken_at: new Date().toISOString() },
  });

  const early = await phone.push();
  assert.ok(early.waiting >= 1);
  assert.equal(early.statuses[action.id], "waiting");
  assert.equal(phone.outcome(action.id)?.synced, false, "waiting is not an answer: the action stays queued");
  assert.equal((await desk.order(order.id)).evidence.photos.length, 0);

  assert.equal(phone.attachFile(image), sha256);
  const report = await phone.push();
  assert.equal(report.applied, 1);
  assert.equal(phone.outcome(action.id)?.outcome?.status, "applied");

  const held = await desk.order(order.id);
  assert.deepEqual(
    held.evidence.photos.map((p) => [p.sha256, p.purpose]),
    [[sha256, "after"]],
  );
  const head = await desk.call("HEAD", `/api/v1/blobs/${sha256}`);
  assert.equal(head.status, 200, "the server holds the file");
});
