/**
 * A resumed upload: the connection dropped half-way through a photo's upload. The server kept
 * what arrived; the client asks (`HEAD`, `Upload-Offset`) and sends only the rest, and the photo
 * action then applies.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { FlakyNetwork, newPhone, orderOf, PASSWORD, photo, SKIP } from "./helpers.js";

test("an interrupted upload is resumed from the server's offset", { skip: SKIP }, async () => {
  const { desk, order } = await orderOf("tech1", "卫生间暖气片接口滴水");
  const network = new FlakyNetwork();
  const phone = newPhone({ fetch: network.fetch });
  await phone.login("tech1", PASSWORD);
  const image = photo(64, 48);
  const sha256 = phone.attachFile(image);
  assert.equal(sha256, createHash("sha256").update(image).digest("hex"));
  const half = Math.floor(image.length / 2);
  // The first half arrived before the connection dropped (same user, as the earlier attempt was).
  const partial = await desk.upload(`/api/v1/blobs/${sha256}`, image.subarray(0, half), {
    "Upload-Length": String(image.length),
  });
  assert.equal(partial.status, 202, await partial.text());

  const action = phone.enqueue({
    type: "evidence.photo",
    v: 1,
    payload: { work_order_id: order.id, blob: sha256, purpose: "before" },
  });
  const report = await phone.push();

  assert.equal(report.applied, 1);
  assert.equal(phone.outcome(action.id)?.outcome?.status, "applied");
  const puts = network.requests.filter((request) => request.method === "PUT");
  assert.deepEqual(
    puts.map((request) => [new URL(request.url).searchParams.get("offset"), request.body]),
    [[String(half), `<${image.length - half} bytes>`]],
    "only the rest was sent",
  );
  const photos = (await desk.order(order.id)).evidence.photos.filter((p) => p.sha256 === sha256);
  assert.deepEqual(
    photos.map((p) => p.purpose),
    ["before"],
  );
});
