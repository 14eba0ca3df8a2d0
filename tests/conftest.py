"""Fixtures shared by the test directories."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_cluster():
    """``local_cluster(n_workers)``: a Dask LocalCluster for the tests (the cimsim[dask] extra, in
    dev, so CI has it): worker processes of one thread, localhost only, no dashboard.  The
    scheduler still serves its health and metrics routes over HTTP, on port 8787 unless told
    otherwise, so each cluster takes a free port: two clusters alive at once do not collide."""
    distributed = pytest.importorskip("distributed")

    def make(n_workers: int):
        return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                        host="127.0.0.1", scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})

    return make
