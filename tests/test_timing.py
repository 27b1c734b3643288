"""EpochTimer: seconds per epoch from the epochs timed in this process (a fake clock, no timing)."""

from types import SimpleNamespace

import pytest

from lsr_hf.job import timing
from lsr_hf.job.timing import EpochTimer


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
    assert timer.seconds_per_epoch() == pytest.approx(2.0 * 11)


def test_an_epoch_slowed_by_another_job_does_not_move_the_figure(clock):
    """Median over epochs of seconds per step: three epochs at 2 s a step and one at 9 s (a test suite ran beside
    it) give 2 s a step; the mean would give 3.75."""
    timer = EpochTimer()
    args, state = SimpleNamespace(gradient_accumulation_steps=1), SimpleNamespace(global_step=0)
    timer.on_train_begin(args, state, None, train_dataloader=list(range(10)))
    for seconds in (20.0, 90.0, 20.0, 20.0):
        run_epoch(timer, state, clock, steps=10, seconds=seconds)
    assert timer.seconds_per_epoch() == pytest.approx(20.0)
    run_epoch(timer, state, clock, steps=0, seconds=5.0)  # an epoch with no step (resumed at its end) is not timed
    assert timer.seconds_per_epoch() == pytest.approx(20.0)


def test_nothing_timed_or_no_length_gives_none(clock):
    timer = EpochTimer()
    assert timer.seconds_per_epoch() is None
    args, state = SimpleNamespace(gradient_accumulation_steps=1), SimpleNamespace(global_step=0)
    timer.on_train_begin(args, state, None, train_dataloader=iter(range(5)))  # no len(): epoch length unknown
    run_epoch(timer, state, clock, steps=5, seconds=1.0)
    assert timer.seconds_per_epoch() is None
