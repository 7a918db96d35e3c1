"""What is built to last leaves the collector's generations, and no garbage goes with it."""

import gc
import weakref

import pytest

from service.heap import long_lived, settle


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()


def test_settle_collects_the_cyclic_garbage_of_the_moment_before_freezing() -> None:
    kept, dropped = Node(), Node()
    gone = weakref.ref(dropped)
    del dropped
    settle()
    assert gone() is None
    assert gc.get_freeze_count() > 0
    assert kept.me is kept


def test_long_lived_builds_without_collections_then_freezes() -> None:
    with long_lived():
        assert not gc.isenabled()
        built = [Node() for _ in range(10)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(built)
