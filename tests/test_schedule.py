"""The step schedule: lr × γ at milestone epochs after a linear warm-up, and its config checks."""

import pytest
import torch

from lsr_hf.schedule import ScheduleConfig, multistep_with_warmup


def rates(warmup, milestones, gamma, steps, base=0.1):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched = multistep_with_warmup(opt, warmup, milestones, gamma)
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen


def test_warmup_then_steps():
    expected = [0.025, 0.05, 0.075, 0.1, 0.1, 0.02, 0.02, 0.004, 0.004]  # warm-up 4, ×0.2 at steps 5 and 7
    assert rates(4, [5, 7], 0.2, 9) == pytest.approx(expected)


def test_no_warmup_no_milestones_is_constant():
    assert rates(0, [], 0.2, 5) == pytest.approx([0.1] * 5)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(milestones=[60, 30]), "milestones must be strictly increasing"),
        (dict(milestones=[0, 10]), "milestones must be positive"),
        (dict(milestones=[True]), "milestones must be positive"),
        (dict(gamma=0), r"gamma must be in \(0, 1\]"),
        (dict(gamma=1.5), r"gamma must be in \(0, 1\]"),
    ],
)
def test_bad_values_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScheduleConfig(**kwargs)
