"""The observation protocol: one declaration of the pixels per budget class and task, read by every
pixel method, so that methods in one comparison see byte-identical images."""

from __future__ import annotations

import pytest
import torch

import envs
from methods.protocols import PROTOCOL_KEYS, budget_classes, protocol
from methods import available_methods, get_method_class
from methods.presets import budget_class, load_config

PIXEL_METHODS = [m for m in available_methods() if get_method_class(m).reads_pixels]


def _env_pixels(kwargs: dict) -> dict:
    """The keywords that decide what the renderer draws (frames are stacked per method, below)."""
    return {k: kwargs.get(k, default) for k, default in (("image_size", 84), ("supersample", 1), ("crop_static_rows", False))}


@pytest.mark.parametrize("budget", budget_classes())
@pytest.mark.parametrize("task", ["cartpole", "cartpole-paper", "hopper"])
def test_every_pixel_method_reads_the_protocol_of_its_budget_class(budget, task):
    expected = protocol(budget, task)
    assert set(expected) == set(PROTOCOL_KEYS)
    for name in PIXEL_METHODS:
        cls = get_method_class(name)
        kwargs = cls.env_kwargs(load_config(cls, task, budget))
        assert _env_pixels(kwargs) == {k: expected[k] for k in ("image_size", "supersample", "crop_static_rows")}, name
        assert kwargs["frame_stack"] == (expected["frame_stack"] if cls.stacks_frames else 1), name


def test_a_variant_preset_reads_its_standard_ancestors_protocol():
    dreamer = get_method_class("dreamerv3")
    assert budget_class(dreamer, "cpu-penalty") == "cpu" and budget_class(dreamer, "smoke") == "smoke"
    assert load_config(dreamer, "cartpole", "cpu-penalty").image_size == protocol("cpu", "cartpole")["image_size"]


def test_a_method_preset_that_sets_a_protocol_key_is_refused(tmp_path, monkeypatch):
    cls = get_method_class("dva")
    path = tmp_path / "dva.yaml"
    path.write_text("cpu:\n  cartpole: {image_size: 32}\n")
    monkeypatch.setattr(cls, "presets_path", classmethod(lambda c: path))
    with pytest.raises(ValueError, match="sets image_size: the observation protocol declares"):
        load_config(cls, "cartpole", "cpu")
    path.write_text("smoke:\n  cartpole: {image_size: 16}\n")  # smoke has no protocol: allowed
    assert load_config(cls, "cartpole", "smoke").image_size == 16


def test_an_override_still_changes_one_run():
    cls = get_method_class("drqv2")
    assert load_config(cls, "cartpole", "cpu", {"image_size": 32}).image_size == 32


def test_two_methods_built_from_one_protocol_render_byte_identical_pixels_for_the_same_states():
    """D.Va (frames of consecutive steps) and DrQ-v2 (action repeat 2, frames of agent steps) built
    from the cpu CartPole protocol: the same states give the same bytes."""
    built = {}
    for name in ("dva", "drqv2"):
        cls = get_method_class(name)
        kwargs = cls.env_kwargs(load_config(cls, "cartpole", "cpu")) | {"num_envs": 3}
        built[name] = envs.make("cartpole", seed=5, **kwargs)
    dva_env, drq_env = built["dva"], built["drqv2"]
    dva_env.reset(), drq_env.reset()
    draws = torch.Generator().manual_seed(0)
    for _ in range(3):  # arbitrary states, set on both; one control step of the inner env each
        q, qd = dva_env.sim_state
        q = q.detach() + torch.randn(q.shape, generator=draws, dtype=q.dtype)
        qd = qd.detach() + torch.randn(qd.shape, generator=draws, dtype=qd.dtype)
        for env in (dva_env, drq_env.env):
            env.set_sim_state(q.clone(), qd.clone())
        action = torch.rand(3, 1, generator=draws) * 2 - 1
        dva_pixels, drq_pixels = dva_env.step(action)[0]["pixels"], drq_env.env.step(action)[0]["pixels"]
        assert dva_pixels.dtype == torch.uint8 and dva_pixels.shape[-2:] == (25, 48)
        assert torch.equal(dva_pixels[:, -3:], drq_pixels[:, -3:])


def test_every_pixel_method_has_every_protocol_key_so_any_protocol_is_readable():
    """A protocol may crop rows or change the image for every method at once: no pixel method's
    config may lack a key (DreamerV3 reads one frame and declares it)."""
    import dataclasses

    for name in PIXEL_METHODS:
        cls = get_method_class(name)
        keys = {f.name for f in dataclasses.fields(cls.config_cls)}
        assert set(PROTOCOL_KEYS) <= keys, (name, set(PROTOCOL_KEYS) - keys)
