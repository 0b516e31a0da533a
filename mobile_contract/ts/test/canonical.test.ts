/** Every published canonical-JSON vector, reproduced by the TypeScript implementation. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { canonical, contentSha256, NotCanonicalisable } from "../src/canonical.js";

interface Case {
  name: string;
  input: string;
  canonical: string;
  sha256: string;
}

interface Vectors {
  cases: Case[];
  refused: { name: string; input: string }[];
}

// Compiled to dist/test/, so the vectors are three levels up: dist/test → ts → mobile_contract.
const vectors = JSON.parse(
  readFileSync(new URL("../../../vectors/canonical_json.json", import.meta.url), "utf8"),
) as Vectors;

test("there are vectors to check", () => {
  assert.ok(vectors.cases.length >= 20);
  assert.ok(vectors.refused.length >= 1);
});

for (const vector of vectors.cases) {
  test(`canonical: ${vector.name}`, () => {
    const content: unknown = JSON.parse(vector.input);
    assert.equal(canonical(content), vector.canonical);
    assert.equal(contentSha256(content), vector.sha256);
  });
}

for (const vector of vectors.refused) {
  test(`refused: ${vector.name}`, () => {
    assert.throws(() => canonical(JSON.parse(vector.input)), NotCanonicalisable);
  });
}

test("values JSON.stringify would drop or reshape are refused", () => {
  assert.throws(() => canonical({ a: undefined }), NotCanonicalisable);
  assert.throws(() => canonical([new Date(0)]), NotCanonicalisable);
  assert.throws(() => canonical({ n: 1n }), NotCanonicalisable);
  assert.throws(() => canonical({ n: Number.NaN }), NotCanonicalisable);
});
