"""The ``bench.paced`` node of B3 and B10: a steady flood of progress events.

B10 imports it; B3 has its kernel import it.
"""

from __future__ import annotations

import time

import chainlib as cl


@cl.node("bench.paced")
def bench_paced(ctx: cl.Context, x: int, rate: float = 100_000, seconds: float = 10.0) -> int:
    """Emit about ``rate`` progress events a second for ``seconds`` s."""
    t0 = time.monotonic()
    n = 0
    while True:
        elapsed = time.monotonic() - t0
        if elapsed >= seconds:
            return x
        target = int(rate * elapsed) + 1000
        while n < target:
            ctx.progress((n % 1000) / 1000)
            n += 1
        if n > rate * (time.monotonic() - t0):
            time.sleep(0.001)
