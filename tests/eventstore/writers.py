"""Child-process writers for the concurrency and crash tests (importable by spawn)."""

from __future__ import annotations

import sys

from eventstore import open_log
from tests.eventstore.helpers import batch


def append_batches(url: str, prefix: str, batches: int, size: int) -> int:
    log = open_log(url)
    try:
        stored = 0
        for b in range(batches):
            results = log.append_sync(batch(f"{prefix}-{b}", size))
            stored += sum(r.status == "stored" for r in results)
        return stored
    finally:
        log.close()


def append_until_killed(url: str, prefix: str, size: int, acked_path: str) -> None:
    """Append batches forever; after each returns, record its ids as acknowledged.

    The parent kills this process with SIGKILL at a random moment.
    """
    log = open_log(url)
    with open(acked_path, "a", encoding="utf-8") as acked:
        b = 0
        while True:
            envelopes = batch(f"{prefix}-{b}", size)
            log.append_sync(envelopes)
            acked.write("".join(f"{e.event_id}\n" for e in envelopes))
            acked.flush()
            b += 1


if __name__ == "__main__":
    append_until_killed(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
