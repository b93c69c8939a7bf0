"""The local executor: worker threads of this process run the items (see :mod:`.seam`)."""

from __future__ import annotations

import threading

from ..errors import RunStopped
from .seam import ItemHost, ItemWork, NodeFailed, execute_item


class LocalThreads:
    """``workers`` threads, each taking items from the host and running them to the end.

    With one worker the items run on the calling thread (the run's driver thread).
    """

    def __init__(self, workers: int, *, resuming: bool = False) -> None:
        self.workers = workers
        self.resuming = resuming

    def run(self, host: ItemHost, work: ItemWork) -> None:
        if self.workers == 1:
            self._work(host, work)
            return
        threads = [
            threading.Thread(target=self._work, args=(host, work),
                             name=f"chainlib-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _work(self, host: ItemHost, work: ItemWork) -> None:
        while True:
            try:
                taken = host.next_item()
                if taken is None:
                    return
                result = execute_item(work, taken.index, taken.label, taken.values, host,
                                      self.resuming)
            except RunStopped:
                return
            except NodeFailed as failed:
                if not host.item_failed(failed):
                    return
            else:
                host.item_done(taken, result, taken.values)
