"""Work shared between the calling thread and helper threads, robust to helpers that get no core.

Each item has two phases: ``fill(k)`` works on private state (decompressing into
a thread's own buffers) and may be abandoned; ``finish(k, data)`` writes the
shared output and always runs to its end. The caller takes items in turn with
the helpers. When none are left and a helper is still filling one, the caller
waits about as long as a fill takes; if the helper has not finished by then
(on a busy machine it may get no core for many milliseconds) the caller takes
the item over and the helper's fill is discarded. So the caller never waits
long for a helper, and it returns without waiting for abandoned fills (they
touch only their private buffers, which ``discard`` hands back).
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

TODO, FILLING, FINISHING, DONE = range(4)
#: How long the caller waits for a helper's fill before taking it over, when no fill was timed yet
DEFAULT_PATIENCE_S = 0.002


@functools.cache
def _executor(helpers: int) -> ThreadPoolExecutor:
    """A process-wide pool of helper threads (reused across calls and readers)."""
    return ThreadPoolExecutor(max_workers=helpers, thread_name_prefix="foveate-share")


def share(fill: Callable[[int], Any], finish: Callable[[int, Any], Any], discard: Callable[[Any], None], n: int,
          threads: int) -> list[Any]:
    """``[finish(k, fill(k)) for k in range(n)]`` on the calling thread and ``threads - 1`` helpers.

    ``finish`` must release what ``fill`` returned; ``discard`` releases the result of an
    abandoned fill. Errors are raised in the calling thread (a helper's failed fill is left
    to the caller, which then meets the error itself).
    """
    if threads <= 1 or n <= 1:
        return [finish(k, fill(k)) for k in range(n)]
    cond = threading.Condition()
    state = [TODO] * n
    owner: list[object | None] = [None] * n
    results: list[Any] = [None] * n
    errors: list[BaseException | None] = [None] * n
    fill_s: list[float] = []

    def take(me: object, steal: bool) -> int | None:
        with cond:
            for k in range(n):
                if state[k] == TODO:
                    state[k], owner[k] = FILLING, me
                    return k
            if steal:
                for k in range(n):
                    if state[k] == FILLING and owner[k] is not me:
                        owner[k] = me
                        return k
        return None

    def complete(me: object, k: int, data: Any) -> None:
        with cond:
            mine = owner[k] is me and state[k] == FILLING
            if mine:
                state[k] = FINISHING
        if not mine:  # taken over: the other thread finishes it
            discard(data)
            return
        try:
            results[k] = finish(k, data)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors[k] = exc
        finally:
            with cond:
                state[k] = DONE
                cond.notify_all()

    def helper() -> None:
        me = object()
        while (k := take(me, steal=False)) is not None:
            try:
                data = fill(k)
            except BaseException:  # noqa: BLE001 - the caller redoes the item and meets the error itself
                with cond:
                    if owner[k] is me and state[k] == FILLING:
                        state[k], owner[k] = TODO, None
                    cond.notify_all()
                return
            complete(me, k, data)

    for _ in range(min(threads, n) - 1):
        _executor(threads - 1).submit(helper)
    me = object()
    while True:
        k = take(me, steal=False)
        if k is None:
            patience = max(fill_s) if fill_s else DEFAULT_PATIENCE_S
            with cond:
                cond.wait_for(lambda: all(s != FILLING for s in state) or TODO in state, timeout=patience)
            k = take(me, steal=True)  # a released item, or one a helper is still filling
            if k is None:
                break
        t0 = time.perf_counter()
        data = fill(k)
        fill_s.append(time.perf_counter() - t0)
        complete(me, k, data)
    with cond:  # items a helper is finishing (writing the output): short, never abandoned
        cond.wait_for(lambda: all(s == DONE for s in state))
    for e in errors:
        if e is not None:
            raise e
    return results
