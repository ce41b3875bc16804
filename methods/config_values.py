"""The range of every numeric config key, checked once when a config is built (presets and overrides).

One table by key name, shared by all methods (the same name means the same kind of quantity in
every config): what is not listed must be a finite number >= 0. A test checks that every key of
every method's config is covered and that every preset passes, so a new key gets a deliberate
rule. Strings (renderer, schedules, precisions) are checked where they are read.
"""

from __future__ import annotations

import dataclasses
import math

# Counts and sizes: integers >= 1.
POSITIVE_INTS = {
    "num_envs", "image_size", "supersample", "frame_stack", "action_repeat", "horizon", "critic_iterations",
    "critic_minibatches", "max_epochs", "feature_dim", "hidden_dim", "nstep", "batch_size", "batch_length",
    "replay_capacity", "update_every_steps", "updates_per_epoch", "buffer_size", "num_channels", "simnorm_dim",
    "num_bins", "iterations", "num_samples", "num_elites", "num_pi_trajs", "stoch", "classes", "slow_critic_every",
    "vector_steps_per_iteration", "video_length", "video_sequences", "video_context", "model_size",
}  # fmt: skip
# Rates, scales, clips, epsilons, standard deviations: floats > 0.
POSITIVE_FLOATS = {
    "actor_lr", "critic_lr", "lr", "model_lr", "lr_final", "grad_norm", "abort_grad_norm", "grad_clip_norm",
    "model_grad_clip", "ac_grad_clip", "model_eps", "ac_eps", "norm_eps", "min_std", "max_std", "temperature",
    "train_ratio", "updates_per_agent_step", "stddev_clip", "actor_min_std", "actor_max_std", "bin_limit",
    "enc_lr_scale", "discount_denom",
}  # fmt: skip
# Probabilities, discounts, mixing and averaging fractions: in [0, 1].
UNIT_INTERVAL = {
    "gamma", "lam", "target_alpha", "critic_tau", "tau", "rho", "dropout", "discount", "discount_min", "discount_max",
    "return_lambda", "unimix", "slow_critic_fraction", "return_norm_decay", "return_norm_low", "return_norm_high",
}  # fmt: skip
# Log standard deviations, value ranges, biases: any finite number.
SIGNED = {"actor_logstd_init", "student_logstd_init", "vmin", "vmax", "log_std_min", "log_std_max", "gru_update_bias"}
# Lists of layer widths: each an integer >= 1; Adam's betas: each in [0, 1).
LAYER_WIDTHS = {"actor_units", "critic_units", "student_units"}
BETAS = {"betas"}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_value(key: str, value) -> None:
    """Raise ValueError naming `key` when `value` is outside its range; strings and booleans pass."""
    if isinstance(value, (bool, str)) or value is None:
        return
    if key in LAYER_WIDTHS:
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
            raise ValueError(f"{key} must be a non-empty list of layer widths >= 1, got {value!r}")
        return
    if key in BETAS:
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_number(v) and 0 <= v < 1 for v in value):
            raise ValueError(f"{key} must be two numbers in [0, 1), got {value!r}")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_value(key, item)
        return
    if not _is_number(value) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    if key in POSITIVE_INTS:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
    elif key in POSITIVE_FLOATS:
        if value <= 0:
            raise ValueError(f"{key} must be > 0, got {value!r}")
    elif key in UNIT_INTERVAL:
        if not 0 <= value <= 1:
            raise ValueError(f"{key} must be in [0, 1], got {value!r}")
    elif key not in SIGNED and value < 0:
        raise ValueError(f"{key} must be >= 0, got {value!r}")


def check_config(config) -> None:
    """Check every field of a config dataclass (ValueError naming the first bad key)."""
    for f in dataclasses.fields(config):
        check_value(f.name, getattr(config, f.name))
