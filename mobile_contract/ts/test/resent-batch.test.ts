/**
 * A resent batch: the phone was restored from a backup taken before its last push, so it sends
 * the very same batch a second time. Every action is answered `duplicate` with its first answer,
 * and the server holds each one once.
 */
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { test } from "node:test";

import { FlakyNetwork, notes, orderOf, newPhone, PASSWORD, restart, SKIP } from "./helpers.js";

test("the same batch sent twice is answered duplicate for every action", { skip: SKIP }, async () => {
  const { desk, order } = await orderOf("tech2", "热量表校验");
  const network = new FlakyNetwork();
  const phone = newPhone({ fetch: network.fetch });
  await phone.login("tech2", PASSWORD);
  const texts = ["表号 HM-2026-0042", "读数 12345.6 GJ", "铅封完好"];
  const ids = texts.map(
    (text) => phone.enqueue({ type: "work_order.note", v: 1, payload: { work_order_id: order.id, text } }).id,
  );
  const backup = `${phone.statePath}.backup`;
  copyFileSync(phone.statePath, backup);

  const first = await phone.push();
  assert.equal(first.applied, 3);

  copyFileSync(backup, phone.statePath);
  const restored = restart(phone, { fetch: network.fetch });
  assert.equal(restored.pending().length, 3, "the backup does not know the batch was answered");
  const second = await restored.push();

  assert.equal(second.duplicates, 3);
  assert.equal(second.applied, 0);
  const [firstBody, secondBody] = network.pushBodies();
  assert.deepEqual(secondBody?.actions, firstBody?.actions, "the very same batch");
  for (const id of ids) {
    assert.equal(restored.outcome(id)?.outcome?.status, "applied", "each keeps its first answer");
  }
  assert.deepEqual(notes(await desk.order(order.id)), texts);
});
