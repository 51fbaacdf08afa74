"""jobsite/heap.py: start-up objects out of the collector's full passes."""
import gc

from jobsite.heap import freeze_startup_heap


def test_freezing_leaves_only_objects_made_later_to_the_collector():
    try:
        frozen = freeze_startup_heap()
        # (the count can only fall from here: another thread may free a frozen object)
        assert frozen >= gc.get_freeze_count() > 10_000
        made_later = [[k] for k in range(1_000)]
        tracked = gc.get_objects()
        assert len(tracked) < frozen  # a full pass walks these, not the frozen ones
        assert any(obj is made_later[0] for obj in tracked)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_refreezing_frees_what_was_frozen_and_replaced():
    import weakref

    from jobsite.heap import refreeze_heap

    class Node:
        pass

    old = Node()
    old.me = old  # a cycle: only the collector frees it
    gone = weakref.ref(old)
    try:
        freeze_startup_heap()
        del old
        gc.collect()
        assert gone() is not None  # frozen: never collected
        refreeze_heap()
        assert gone() is None
    finally:
        gc.unfreeze()
