"""The cyclic garbage collector beside a catalogue of a million items.

A served version and the catalogue mirror are millions of Python objects (an `Item` and
its genres list per item, id lists a million long) that live until the process ends or
their version is swapped out. CPython's full collection walks every live object: 690 ms
at a million items, holding the event loop, each time the survivors since the last one
reach a quarter of them. A start-up at a million items ran 30 of them (15 s of its 153 s).

So start-up and a swap build with the collector off, and what is built to last (start-up,
a swap, items folded in) is frozen out of later collections (`gc.freeze`). Frozen objects are
still freed by reference count when dropped (a swapped-out version is: measured, it holds
no reference cycle); only a cycle among them is never collected. So each freeze first
collects, or the cyclic garbage of the moment would be kept for good: a walk of what is
not frozen yet (the new version's objects, once; at a million items about 0.7 s).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived() -> Iterator[None]:
    """Builds what is meant to last (start-up's state, a swap's new version) without
    collections, then freezes it. The collector is off for the whole process meanwhile:
    requests served beside a swap leave their cyclic garbage to the collection that ends it."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        settle()


def settle() -> None:
    """Every object alive now leaves the collector's generations: call once a version or
    the mirror is built, so collections walk only what requests allocate."""
    gc.collect()
    gc.freeze()
