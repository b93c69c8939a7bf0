"""The local executor: worker threads of this process run the items (see :mod:`.seam`)."""

from __future__ import annotations

import threading

from ..errors import RunStopped
from ..memory import item_scope
from .seam import ItemHost, ItemWork, NodeFailed, error_message, execute_item


class LocalThreads:
    """``workers`` threads, each taking items from the host and running them to the end.

    With one worker the items run on the calling thread (the run's driver thread). Each item runs
    in a memory scope of the run's budget (:func:`chainlib.memory.item_scope`): the images it
    decodes are reserved until it ends, its fetch included.
    """

    def __init__(self, workers: int, *, resuming: bool = False) -> None:
        self.workers = workers
        self.resuming = resuming

    def run(self, host: ItemHost, work: ItemWork) -> None:
        if self.workers == 1:
            self._guarded(host, work)
            return
        threads = [
            threading.Thread(target=self._guarded, args=(host, work),
                             name=f"chainlib-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _guarded(self, host: ItemHost, work: ItemWork) -> None:
        # A worker thread never dies with a traceback: anything escaping the item loop (a bug,
        # or a failure the host could not turn into a failed item) fails the run with its reason.
        try:
            self._work(host, work)
        except BaseException as exc:
            host.fail_run(error_message(exc), exc)

    def _work(self, host: ItemHost, work: ItemWork) -> None:
        while True:
            with item_scope(host.budget, host.checkpoint):
                try:
                    taken = host.next_item()
                    if taken is None:
                        return
                    result = execute_item(work, taken.index, taken.label, taken.values, host,
                                          self.resuming, source=taken.source,
                                          outputs=host.outputs)
                except RunStopped:
                    return
                except NodeFailed as failed:
                    if not host.item_failed(failed):
                        return
                    continue
                host.item_done(taken, result, taken.values)
