"""Shared fixtures: every test session writes under its own COT_LAB_HOME, never the user's."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def cot_lab_home(tmp_path_factory):
    path = tmp_path_factory.mktemp("cot_lab_home")
    old = os.environ.get("COT_LAB_HOME")
    os.environ["COT_LAB_HOME"] = str(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    yield path
    if old is None:
        os.environ.pop("COT_LAB_HOME", None)
    else:
        os.environ["COT_LAB_HOME"] = old


@pytest.fixture(scope="session")
def synthetic():
    import cot_lab as cl

    return cl.load_corpus("synthetic")


@pytest.fixture()
def decoded(monkeypatch):
    """The run_ids of the store records decoded into Runs while the test runs (a lookup must decode only its own)."""
    from cot_lab.core.runs import Run

    seen = []
    original = Run.from_record

    def counting(cls, record):
        seen.append(record["run_id"])
        return original(record)

    monkeypatch.setattr(Run, "from_record", classmethod(counting))
    return seen


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module (restored after it): tiny models score and train as fast on one
    thread, and on a busy machine (CI) an OpenMP team per op waits for its descheduled threads (0.3 s seen for a
    5-token forward). Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
