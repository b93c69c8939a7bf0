"""B11: the fault table of issue 10: fault cases tried through the command line, items lost
(goal 0) and files overwritten that were not chainlib's (goal 0).

The cases are those of ``tests/test_faults.py`` (built in ``tests/fault_cases.py``); each runs
``python -m chainlib`` on fresh folders under a fault. "lost" counts inputs without exactly one
valid output at the end (pixels checked) plus runs that left an item counted nowhere (done +
failed + not run != total) or printed a traceback; "overwritten" counts files that were not
chainlib's (hashed before and after) that changed.

    PYTHONPATH=. python benchmarks/b11_fault_table.py [--verbose]

Cases needing root (tmpfs) or setpriv print "skipped" where impossible.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fault_cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verbose", action="store_true", help="print each run's output")
    args = ap.parse_args()
    print(f"{'case':<18} {'inputs':>6} {'lost':>5} {'overwritten':>11}  fault / command")
    total_lost = total_over = 0
    for name, case in fault_cases.CASES:
        with tempfile.TemporaryDirectory(prefix="b10-") as tmp:
            outcome = case(Path(tmp))
        if outcome is None:
            print(f"{name:<18} {'-':>6} {'-':>5} {'-':>11}  skipped (needs root/setpriv)")
            continue
        total_lost += outcome.lost
        total_over += outcome.overwritten
        print(f"{name:<18} {outcome.inputs:>6} {outcome.lost:>5} {outcome.overwritten:>11}  "
              f"{outcome.fault}\n{'':<45}$ {outcome.command}")
        exits = ", ".join(str(r.returncode) for r in outcome.runs)
        print(f"{'':<45}exit codes: {exits}" + (f"; {'; '.join(outcome.notes)}"
                                                if outcome.notes else ""))
        if args.verbose:
            for r in outcome.runs:
                print(fault_cases.safe_text(r.stdout + r.stderr))
    print(f"total: {total_lost} items lost (goal 0), {total_over} files overwritten that were "
          f"not ours (goal 0)")


if __name__ == "__main__":
    main()
