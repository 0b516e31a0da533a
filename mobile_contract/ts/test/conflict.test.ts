/**
 * A conflict: the technician accepted an order offline, but meanwhile the dispatcher gave it to
 * someone else. The intent answers `conflict` with the order as it is now, is marked done (never
 * resent), and the server keeps the dispatcher's decision; the next pull takes the order away.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { Desk, orderOf, newPhone, PASSWORD, SKIP } from "./helpers.js";

test("an intent on an order reassigned meanwhile answers conflict with current", { skip: SKIP }, async () => {
  const { order } = await orderOf("tech2", "客厅暖气片上热下凉");
  const phone = newPhone();
  await phone.login("tech2", PASSWORD);
  const first = await phone.pull();
  assert.equal(first.resets, 1, "a first pull is a full snapshot");
  assert.ok(phone.local("work_order")[order.id], "the order is on the phone");
  const accept = phone.enqueue({ type: "work_order.accept", v: 1, payload: { work_order_id: order.id } });

  const dispatcher = await Desk.login("dispatcher1");
  const colleague = await Desk.login("tech1");
  await dispatcher.json("POST", `/api/v1/work-orders/${order.id}/assign`, {
    user_id: colleague.userId,
    reason: "张伟离现场更近",
  });

  const report = await phone.push();

  assert.equal(report.conflicts, 1);
  const answer = phone.outcome(accept.id);
  assert.equal(answer?.synced, true, "a conflict is final: the action is not sent again");
  assert.equal(answer?.outcome?.status, "conflict");
  assert.ok(answer?.outcome?.current, "the answer carries the order as it is now");
  assert.equal((answer.outcome.current as { state?: unknown }).state, "assigned");
  const held = await dispatcher.order(order.id);
  assert.equal(held.order.assignee_id, colleague.userId, "the dispatcher's decision stands");
  assert.equal(held.order.state, "assigned", "the accept was not applied");
  assert.equal(held.timeline.filter((event) => event.type === "accepted").length, 0);

  const next = await phone.pull();
  assert.equal(next.resets, 0, "the kept cursor goes on from where it was");
  assert.equal(phone.local("work_order")[order.id], undefined, "the order left the phone's scope");
});
