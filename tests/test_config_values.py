"""Every numeric config key has a deliberate range, and every preset of every method lies in it."""

from __future__ import annotations

import dataclasses

import pytest

from methods import available_methods, get_method_class
from methods.config_values import BETAS, LAYER_WIDTHS, POSITIVE_FLOATS, POSITIVE_INTS, SIGNED, UNIT_INTERVAL, check_value
from methods.presets import available_presets, load_config
from methods.registry import available_tasks

RULED = POSITIVE_INTS | POSITIVE_FLOATS | UNIT_INTERVAL | SIGNED | LAYER_WIDTHS | BETAS
# Numeric keys for which "a finite number >= 0" is the rule (0 means "off" or "automatic").
NON_NEGATIVE = {
    "seed_steps", "imagine_starts", "augment_pad", "prefill", "pretrain_updates", "num_seed_frames", "num_expl_steps",
    "learning_starts", "teacher_iterations", "consistency_coef", "reward_coef", "value_coef", "termination_coef",
    "entropy_coef", "actor_entropy", "actor_mean_reg", "dyn_scale", "rep_scale", "free_nats", "slow_critic_reg",
    "early_stop_loss",
}  # fmt: skip


def _configs():
    for name in available_methods():
        cls = get_method_class(name)
        yield name, cls, cls.config_cls()


@pytest.mark.parametrize("name, cls, config", list(_configs()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_numeric_key_has_a_rule(name, cls, config):
    unruled = [
        f.name for f in dataclasses.fields(config)
        if isinstance(getattr(config, f.name), (int, float, list, tuple)) and not isinstance(getattr(config, f.name), bool)
        and f.name not in RULED | NON_NEGATIVE
    ]  # fmt: skip
    assert not unruled, f"{name}: give these keys a range in methods/config_values.py: {unruled}"


def test_every_preset_of_every_method_is_in_range_on_every_task():
    for name in available_methods():
        cls = get_method_class(name)
        for preset in available_presets(cls):
            for task in available_tasks():
                load_config(cls, task, preset)


@pytest.mark.parametrize(
    "key, value",
    [("actor_lr", float("nan")), ("actor_lr", 0.0), ("num_envs", 0), ("num_envs", 2.5), ("gamma", 1.01), ("tau", -0.1),
     ("actor_units", [64, 0]), ("actor_units", []), ("betas", [0.9, 1.0]), ("prefill", -1), ("vmin", float("inf")),
     ("horizon", 1.5)],
)  # fmt: skip
def test_out_of_range_values_are_named(key, value):
    with pytest.raises(ValueError, match=key):
        check_value(key, value)
