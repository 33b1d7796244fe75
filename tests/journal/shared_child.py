"""Child processes of the shared-ledger tests: ``python -m tests.journal.shared_child MODE ...``.

* ``leader URL``: a candidate for leadership; prints ``ready`` and runs until killed.
* ``race URL CHILD OPS SEED``: a client racing for scarce positions from 4 threads;
  prints one ``ack id code duplicate`` line per acknowledged reserve (retries of
  earlier ids included) and ``done`` at the end.
* ``wait URL ID``: a client that submits one reserve and waits (no leader runs);
  prints ``submitted`` as it submits (the test then waits for the inbox row).
* ``zygote URL``: a fork server for cheap leader candidates. It loads the library
  (kernels included) once, prints ``ready``, then forks one leader candidate per
  ``spawn`` line read from stdin and prints its pid. A candidate is a real process,
  killed by the test with ``SIGKILL`` like any other.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np


def main(argv: list[str]) -> None:
    from allocator import open_ledger
    from allocator.exceptions import LedgerBusyError, StorageError

    mode, url = argv[0], argv[1]
    if mode == "zygote":
        _zygote(url)
        return
    if mode == "leader":
        led = open_ledger(url, role="leader", poll=0.1, lease=2.0)
        print("ready", flush=True)
        while True:
            time.sleep(3600)
            led.seq  # noqa: B018 - keep the ledger alive
    if mode == "wait":
        led = open_ledger(url, role="client", timeout=600)
        ident = int(argv[2])
        print("submitted", flush=True)
        led.reserve(0, 0, 1, channel=1, id=ident)
        print("returned", flush=True)
        return
    if mode == "race":
        child, ops, seed = int(argv[2]), int(argv[3]), int(argv[4])
        led = open_ledger(url, role="client", timeout=60, poll=0.1)
        lock = threading.Lock()

        def work(t: int) -> None:
            rng = np.random.default_rng(seed * 100 + t)
            sent: list[int] = []
            for i in range(ops):
                if sent and rng.random() < 0.2:
                    ident = int(sent[int(rng.integers(0, len(sent)))])  # a redelivery
                else:
                    ident = child * 1_000_000 + t * 10_000 + i + 1
                    sent.append(ident)
                sku, loc = int(rng.integers(0, 2)), int(rng.integers(0, 2))
                while True:
                    try:
                        res = led.reserve(sku, loc, 1, channel=1, id=ident)
                        break
                    except (LedgerBusyError, StorageError):
                        continue  # retry with the same id
                with lock:
                    print(f"ack {res.id} {int(res.code)} {int(res.duplicate)}", flush=True)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        print("done", flush=True)
        led.close()
        return
    raise SystemExit(f"unknown mode {mode}")


def _zygote(url: str) -> None:
    import os
    import signal

    from allocator import Events, Ledger
    from tests.conftest import make_small_network

    warm = Ledger(make_small_network())  # load every kernel before forking
    warm.apply(Events.receive(0, 0, 5, id=1))
    warm.reserve(0, 0, 1, channel=1, id=2)
    del warm
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the candidates
    print("ready", flush=True)
    while line := sys.stdin.readline():
        if line.strip() != "spawn":
            continue
        pid = os.fork()
        if pid == 0:  # the candidate: no threads or connections were inherited
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            from allocator import open_ledger

            led = open_ledger(url, role="leader", poll=0.1, lease=2.0)
            threading.Event().wait()
            led.close()
            os._exit(0)
        print(pid, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
