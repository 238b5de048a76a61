"""pytest fixtures for testing a training job's shutdown under sminit (entry point `pytest11`).

Importing this module costs nothing: the kit is imported when a fixture is first used.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def ml_tree(tmp_path):
    """ml_tree(**options) -> sminit.testing.MlTree: a fresh /opt/ml tree in a temp dir."""
    from sminit.testing import MlTree

    count = [0]

    def build(**options):
        count[0] += 1
        return MlTree(tmp_path / f"ml-{count[0]}", **options)

    return build


@pytest.fixture
def sminit_job():
    """sminit_job(command, tree, **options) -> sminit.testing.Job, started; killed at teardown."""
    from sminit.testing import Job, closing_all

    yield from closing_all(Job)
