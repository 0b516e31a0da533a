/**
 * A lost answer: the server applied the batch but the phone never heard back, and the app was
 * killed meanwhile. The restarted app sends the same actions again; they are answered
 * `duplicate` with their first answer, and the server holds each one once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { FlakyNetwork, notes, orderOf, restart, newPhone, PASSWORD, SKIP } from "./helpers.js";

test("a lost push answer is resent and answered duplicate, applied once", { skip: SKIP }, async () => {
  const { desk, order } = await orderOf("tech1", "卫生间暖气片接口滴水");
  const network = new FlakyNetwork();
  const phone = newPhone({ fetch: network.fetch });
  await phone.login("tech1", PASSWORD);
  const accept = phone.enqueue({ type: "work_order.accept", v: 1, payload: { work_order_id: order.id } });
  const note = phone.enqueue({
    type: "work_order.note",
    v: 1,
    payload: { work_order_id: order.id, text: "到达前电话联系住户 📞" },
  });

  network.loseAnswer("POST", "/api/v1/sync/push");
  await assert.rejects(phone.push(), { name: "Offline" });
  assert.equal(phone.pending().length, 2, "nothing is marked done without an answer");

  const afterRestart = restart(phone);
  assert.deepEqual(
    afterRestart.pending().map((action) => [action.id, action.seq]),
    [
      [accept.id, 1],
      [note.id, 2],
    ],
    "the restarted app resumes with the same ids and seqs",
  );
  const report = await afterRestart.push();
  assert.equal(report.duplicates, 2);
  assert.equal(report.applied, 0);
  assert.equal(afterRestart.outcome(accept.id)?.outcome?.status, "applied", "the first answer is kept");
  assert.equal(afterRestart.pending().length, 0);
  assert.equal(afterRestart.lastAppliedSeq, 2);

  const held = await desk.order(order.id);
  assert.equal(held.order.state, "accepted");
  assert.equal(held.timeline.filter((event) => event.type === "accepted").length, 1);
  assert.deepEqual(notes(held), ["到达前电话联系住户 📞"]);
  for (const request of network.requests) {
    assert.equal(request.headers.get("X-App-Version"), "1.4.2", `${request.method} ${request.url}`);
  }
});
