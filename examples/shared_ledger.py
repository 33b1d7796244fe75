"""One ledger shared by several processes through PostgreSQL: leader, standby, failover.

Starts a throwaway PostgreSQL server (or uses ``ALLOCATOR_PG_URL``, a
``postgresql://`` URL, when set), creates a shared journal, and runs:

* a leader and a standby, each in a process of its own (``role="leader"``);
* three client processes racing for the last 10 units of one position: exactly 10
  reserves succeed, however the calls interleave;
* this process as a client: a retry by id returns the first result, a read reflects
  its own write, and ``staleness`` says how current its replica is;
* the leader killed with ``SIGKILL``: the standby takes over, and the next reserve
  is applied by it;
* ``verify_journal`` on the URL: the hash chain, the mark and a full replay agree.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from allocator import Network, open_ledger
from allocator.journal import verify_journal

CANDIDATE = """
import sys
from allocator import open_ledger
ledger = open_ledger(sys.argv[1], role="leader", poll=0.1, lease=2.0)
print("ready", flush=True)
sys.stdin.readline()
ledger.close()
"""

CLIENT = """
import sys, threading
from allocator import open_ledger
ledger = open_ledger(sys.argv[1], role="client", poll=0.1)
first = int(sys.argv[2])
granted = []
def buy(i):
    if ledger.reserve("TSHIRT", "Store-1", 1, channel="online", id=first + i).accepted:
        granted.append(first + i)
threads = [threading.Thread(target=buy, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(granted), flush=True)
ledger.close()
"""


def build_network():
    net = Network()
    for channel in ("store", "online"):
        net.add_channel(channel)
    net.add_location("Store-1", kind="store", lat=31.23, lon=121.47)
    net.add_location("DC", kind="warehouse", lat=31.10, lon=121.80)
    for sku in ("TSHIRT", "JEANS"):
        net.add_sku(sku)
    return net.build()


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def leader_pid(ledger) -> int:
    """The pid of the process that leads (``host:pid`` in the journal's lease)."""
    _, holder, _ = ledger.lease()
    return int(holder.rsplit(":", 1)[1]) if holder else 0


def session(url: str) -> None:
    network = build_network()
    with open_ledger(url, network, role="client", poll=0.1) as ledger:
        candidates = [python(CANDIDATE, url) for _ in range(2)]
        for proc in candidates:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"

        ledger.receive("TSHIRT", "Store-1", 10, id=1)
        ledger.receive("JEANS", "DC", 4, id=2)

        # three processes, eight threads each, race for the 10 T-shirts
        clients = [python(CLIENT, url, str(1000 * (k + 1))) for k in range(3)]
        granted = [int(proc.communicate()[0]) for proc in clients]
        ledger.sync()  # read what the other processes wrote
        pos = ledger.position("TSHIRT", "Store-1")
        print(f"granted per process {granted}: {sum(granted)} of 10 units")
        print(f"on_hand {pos['on_hand']}, reserved {pos['reserved']}")

        hold = ledger.reserve("JEANS", "DC", 3, channel="online", id=3)
        again = ledger.reserve("JEANS", "DC", 3, channel="online", id=3)  # a retry
        print(f"reserve: {hold.code.name}; retry: {again.code.name}, duplicate={again.duplicate}")
        print(f"read-your-writes: available {ledger.available('JEANS', 'DC', 'online')}")
        print(f"replica at batch {ledger.seq}, staleness {ledger.staleness:.3f} s")

        # failover: kill the leader, the standby takes over
        pid = leader_pid(ledger)
        victim = next(p for p in candidates if p.pid == pid)
        before = ledger.lease()[0]
        t0 = time.perf_counter()
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        after = ledger.reserve("JEANS", "DC", 1, channel="online", id=4)
        print(
            f"leader killed; the standby (epoch {before} -> {ledger.lease()[0]}) applied the "
            f"next reserve ({after.code.name}) {time.perf_counter() - t0:.2f} s later"
        )
        for proc in candidates:
            if proc.poll() is None:
                proc.communicate("stop\n")
    report = verify_journal(url)
    print(f"journal verified: {report.ok}, batches 1..{report.last_seq}")


def main() -> None:
    url = os.environ.get("ALLOCATOR_PG_URL")
    if url:
        session(url)
        return
    # a throwaway server for the example (in production: the URL of your database)
    from allocator.bench._pgserver import PgServer

    server = PgServer(fsync=False)
    try:
        session(server.url("example"))
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
