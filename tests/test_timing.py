"""EpochTimer: seconds per epoch from the epochs timed in this process (a fake clock, no timing)."""

from types import SimpleNamespace

import pytest

from lsr_hf import timing
from lsr_hf.timing import EpochTimer


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", fake)
    return fake


def run_epoch(timer, state, clock, steps, seconds):
    timer.on_epoch_begin(None, state, None)
    state.global_step += steps
    clock.now += seconds
    timer.on_epoch_end(None, state, None)


def test_seconds_per_epoch_counts_whole_and_partial_epochs(clock):
    timer = EpochTimer()
    args, state = SimpleNamespace(gradient_accumulation_steps=2), SimpleNamespace(global_step=0)
    timer.on_train_begin(args, state, None, train_dataloader=list(range(21)))  # 21 batches / 2 -> 11 steps
    assert timer.steps_per_epoch == 11
    run_epoch(timer, state, clock, steps=11, seconds=22.0)
    clock.now += 50.0  # evaluation and checkpointing between epochs are not counted
    run_epoch(timer, state, clock, steps=4, seconds=8.0)  # a resumed, partial epoch: 2 s a step as well
    assert timer.seconds_per_epoch() == pytest.approx(30.0 / 15 * 11)


def test_nothing_timed_or_no_length_gives_none(clock):
    timer = EpochTimer()
    assert timer.seconds_per_epoch() is None
    args, state = SimpleNamespace(gradient_accumulation_steps=1), SimpleNamespace(global_step=0)
    timer.on_train_begin(args, state, None, train_dataloader=iter(range(5)))  # no len(): epoch length unknown
    run_epoch(timer, state, clock, steps=5, seconds=1.0)
    assert timer.seconds_per_epoch() is None
