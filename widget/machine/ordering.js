// Snapshot ordering: which kernel snapshot the view adopts (the "ordering" rule of ../state.js).
import { MAX_SEQ_JUMP, VALID_FROM, epochOf, isValidSnapshot } from "./base.js";

export function settles(pending, snap) {
  if (!snap) return false;
  return snap.run_id !== pending.fromRunId || !VALID_FROM[pending.command].includes(snap.state);
}

/**
 * Adopt a snapshot if it is newer than anything seen (see "ordering" above).
 * `trusted`: it comes from a kernel reply (ack / status / goodbye), not from a trait.
 * Returns {accepted, gap, suspect}.
 */
export function adopt(d, snap, trusted) {
  const no = { accepted: false, gap: false, suspect: false };
  if (!isValidSnapshot(snap)) return no;
  const epoch = epochOf(snap);
  const first = d.seq < 0;
  const sameEpoch = first || epoch === d.epoch;
  if (sameEpoch && snap.seq <= d.seq) return no;
  if (!trusted && (!sameEpoch || snap.seq > d.seq + MAX_SEQ_JUMP) && !first) {
    if (!d.suspect || d.suspect.seq !== snap.seq || d.suspect.epoch !== epoch) {
      d.suspect = { seq: snap.seq, epoch, at: d.now };
    }
    return { ...no, suspect: true };
  }
  const gap = !first && sameEpoch && snap.seq > d.seq + 1;
  d.seq = snap.seq;
  d.epoch = epoch;
  d.snapshot = snap;
  if (trusted || (d.suspect && d.suspect.epoch === epoch && d.suspect.seq <= snap.seq)) {
    d.suspect = null;
  }
  if (d.pending && settles(d.pending, snap)) d.pending = null;
  return { accepted: true, gap, suspect: false };
}
