"""Shared fixtures.

* ``small_network``: 3 channels (store, online, marketplace), 3 locations (two stores,
  one warehouse) and 4 SKUs; hand-checkable.
"""

from __future__ import annotations

import pytest

from allocator import Network, NetworkData


def make_small_network() -> NetworkData:
    net = Network()
    for channel in ("store", "online", "marketplace"):
        net.add_channel(channel)
    net.add_location("S1", kind="store", lat=31.23, lon=121.47)
    net.add_location("S2", kind="store", lat=31.30, lon=121.50)
    net.add_location("DC", kind="warehouse", lat=31.10, lon=121.80)
    for i, price in enumerate((10.0, 20.0, 5.0, 99.0)):
        net.add_sku(f"SKU-{i}", price=price)
    return net.build()


@pytest.fixture
def small_network() -> NetworkData:
    return make_small_network()


# --------------------------------------------------------------------------- PostgreSQL
# ``pg_server``: one throwaway PostgreSQL server for the whole test session, started by
# ``allocator.bench._pgserver`` from Debian's postgresql-15 binaries (as the ``postgres``
# user when the tests run as root). It is never skipped silently: a machine that cannot
# start it fails here (``make test`` installs the binaries first). A developer may opt
# out explicitly with ``ALLOCATOR_TEST_POSTGRES=0``; the PostgreSQL tests are then
# reported as skipped. ``pg_url``: a fresh schema on that server for each test.
@pytest.fixture(scope="session")
def pg_server():  # type: ignore[no-untyped-def]
    import os

    if os.environ.get("ALLOCATOR_TEST_POSTGRES") == "0":
        pytest.skip("PostgreSQL tests opted out (ALLOCATOR_TEST_POSTGRES=0)")
    from allocator.bench._pgserver import PgServer

    server = PgServer(fsync=False)
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server) -> str:  # type: ignore[no-untyped-def]
    import uuid

    return str(pg_server.url(f"t_{uuid.uuid4().hex[:16]}"))
