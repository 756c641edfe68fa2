"""When Python's cyclic garbage collector runs during the batch commands (render, validate): they
make millions of small objects and free almost all of them by reference counting."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def few_collections() -> Iterator[None]:
    """The cyclic collector is off meanwhile. At its default pace (every 700 allocations) it cost a
    200-site render a fifth of its time, and each pass over the young objects also touches the old
    ones they hold, copying the pages the forked children share. Afterwards what survived joins
    the oldest generation without a pass over it (freeze, unfreeze), so turning the collector
    back on does not start with one over everything the render made."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():             # else: what the program froze stays frozen
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def no_closing_collection() -> None:
    """The process ends after this command: what it made is kept out of the interpreter's closing
    collection (a pass over every object of a big lab's plan; the memory goes with the process)."""
    gc.freeze()
