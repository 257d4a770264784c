"""The garbage collector of a server process (the API's, and a worker's): what startup made is
left out of its scans, and it runs after 10,000 new objects instead of 700. (A worker without
this spent ~6% more CPU a message: bench/RESULTS.md.)

With ~50 requests in flight the default thresholds ran a young collection every few requests
and a full one, over the ~200,000 objects that imports, the app and its schemas make, every
~700: ~0.35 ms of CPU a request, and pauses of ~0.1 s in the latency's tail (bench/RESULTS.md).
A request leaves no reference cycles (tests/api/test_garbage.py): reference counting frees what
it made when it ends, and the collector is a backstop, so running it less often costs little
memory."""

import gc

YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_after_startup() -> None:
    """Once the process has imported and built everything it serves with."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
