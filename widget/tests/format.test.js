import { test } from "node:test";
import assert from "node:assert/strict";
import {
  formatDuration, formatEta, formatMean, formatRate, progressFraction, formatProgress, formatAge,
  connectionText,
} from "../format.js";

test("formatDuration", () => {
  assert.equal(formatDuration(null), "—");
  assert.equal(formatDuration(undefined), "—");
  assert.equal(formatDuration(NaN), "—");
  assert.equal(formatDuration(-1), "—");
  assert.equal(formatDuration(0), "0.0 s");
  assert.equal(formatDuration(4.25), "4.2 s");
  assert.equal(formatDuration(9.99), "9.9 s");
  assert.equal(formatDuration(42), "42 s");
  assert.equal(formatDuration(59.9), "59 s");
  assert.equal(formatDuration(60), "1:00");
  assert.equal(formatDuration(62), "1:02");
  assert.equal(formatDuration(3599), "59:59");
  assert.equal(formatDuration(3723), "1:02:03");
  assert.equal(formatDuration(36000 + 5), "10:00:05");
});

test("formatEta", () => {
  assert.equal(formatEta(null), "ETA —");
  assert.equal(formatEta(3723), "ETA 1:02:03");
  assert.equal(formatEta(42), "ETA 42 s");
});

test("formatMean", () => {
  assert.equal(formatMean(null), "—");
  assert.equal(formatMean(0), "0 ms");
  assert.equal(formatMean(0.0123), "12 ms");
  assert.equal(formatMean(0.85), "850 ms");
  assert.equal(formatMean(1.234), "1.23 s");
  assert.equal(formatMean(12.34), "12.3 s");
  assert.equal(formatMean(125), "2:05");
});

test("formatRate", () => {
  assert.equal(formatRate(null), "—");
  assert.equal(formatRate(-1), "—");
  assert.equal(formatRate(0.25), "0.25 items/s");
  assert.equal(formatRate(12.34), "12.3 items/s");
  assert.equal(formatRate(123.4), "123 items/s");
});

test("progressFraction", () => {
  assert.equal(progressFraction(5, 0, null), null);
  assert.equal(progressFraction(5, 0, 0), null);
  assert.equal(progressFraction(5, 0, 10), 0.5);
  assert.equal(progressFraction(5, 5, 10), 1);
  assert.equal(progressFraction(50, 0, 10), 1, "clamped");
  assert.equal(progressFraction(null, null, 10), 0);
});

test("formatProgress", () => {
  assert.equal(formatProgress(12, 0, 100), "12 / 100");
  assert.equal(formatProgress(12, 3, 100), "12 / 100 · 3 failed");
  assert.equal(formatProgress(12, 0, null), "12 / ?");
  assert.equal(formatProgress(undefined, undefined, undefined), "0 / ?");
});

test("formatAge and connectionText", () => {
  assert.equal(formatAge(0.44), "0.4 s");
  assert.equal(formatAge(-0.2), "0.0 s");
  assert.equal(formatAge(12.7), "12 s");
  assert.equal(formatAge(65), "1:05");
  assert.equal(formatAge(null), "—");
  assert.equal(connectionText(0.4, true), "updated 0.4 s ago");
  assert.equal(connectionText(12, false), "connection lost — last update 12 s ago");
  assert.equal(connectionText(NaN, true), "waiting for the kernel…");
});
