"""The batched, differentiable, rendered environment every method trains on (DESIGN.md contract).

Data are torch tensors on `device`. When the action (or the carried state) requires grad, reward
and `obs["state"]` carry gradients back through Newton to the action and to earlier states;
`detach()` cuts that graph at an iteration boundary (SHAC's short horizon). With
`render="differentiable"` the pixels are float and carry gradients to the simulator state too
(the frame stack is built with the graph); with `"raytrace"` they are uint8 and carry none. Done envs are reset
inside `step`, which also cuts their graph, and their whole frame stack is refilled with the
first frame of the new episode (the reference cartpole kept stale frames; dva_paper.md section 8).
"""

from __future__ import annotations

import torch

import newton
from envs.camera import FixedCameraRenderer
from envs.diff_render import DifferentiableRenderer
from envs.newton_bridge import NewtonSim, warp_device_for
from envs.spec import EnvSpec
from envs.tasks.base import Task
from envs.timing import PhaseTimes
from envs.tracking_camera import TrackingCameraRenderer

MIN_IMAGE_SIZE = 16  # the conv encoders (stride 2 then three 3x3) need at least this much
RENDER_MODES = ("raytrace", "differentiable", None)


class DiffVisualEnv:
    """`num_envs` copies of a task, stepped together; see the module docstring for the contract."""

    def __init__(
        self,
        task: Task,
        num_envs: int = 64,
        device: str | torch.device = "cpu",
        seed: int = 0,
        image_size: int = 84,
        frame_stack: int = 3,
        render: str | None = "raytrace",
        supersample: int = 1,
        crop_static_rows: bool = False,
        pixel_grad: bool = True,
    ):
        _check_int("num_envs", num_envs, minimum=1)
        _check_int("supersample", supersample, minimum=1)
        _check_int("frame_stack", frame_stack, minimum=1)
        _check_int("seed", seed, minimum=0)
        if render not in RENDER_MODES:
            raise ValueError(f"render must be one of {RENDER_MODES}, got {render!r}")
        if render is not None:
            _check_int("image_size", image_size, minimum=MIN_IMAGE_SIZE)
        # Differentiable pixels without their graph (D.Va on the differentiable renderer, as the
        # paper's `no_vis_grad`): the same images and forward cost, nothing kept for backward.
        self.pixel_grad = render == "differentiable" and pixel_grad
        self.task = task
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available to this torch ({torch.__version__}); use device='cpu'")
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device(self.device.type, torch.cuda.current_device())
        self.num_envs = num_envs
        self.seed = seed
        wp_device = warp_device_for(self.device)

        builder = newton.ModelBuilder(up_axis=newton.Axis.Z, gravity=(0.0, 0.0, -9.81))
        for _ in range(num_envs):
            builder.begin_world()
            task.build_world(builder)
            builder.end_world()
        self.model = builder.finalize(device=wp_device, requires_grad=True)
        self.sim = NewtonSim(
            self.model, task.make_solver, num_envs, task.control_dt, task.substeps, self.device, collide=task.uses_contacts()
        )
        self.renderer = self._make_renderer(task, render, image_size, supersample, crop_static_rows) if render else None
        if self.renderer is not None and min(self.renderer.output_shape) < MIN_IMAGE_SIZE:
            raise ValueError(
                f"crop_static_rows leaves {self.renderer.output_shape[0]} x {self.renderer.output_shape[1]} pixels at image_size "
                f"{image_size}; the encoders need at least {MIN_IMAGE_SIZE} rows: use a larger image_size"
            )
        self.spec = EnvSpec(
            name=task.name,
            num_envs=num_envs,
            state_dim=task.state_dim,
            action_dim=task.action_dim,
            episode_length=task.episode_length,
            control_dt=task.control_dt,
            substeps=task.substeps,
            image_shape=(3 * frame_stack, *self.renderer.output_shape) if self.renderer is not None else None,
            frame_stack=frame_stack,
            reward_range=task.reward_range,
            render=render,
        )
        # Seconds spent in physics forward/backward and rendering; methods pop them per iteration.
        self.timings = PhaseTimes()
        self.sim.timings = self.timings
        if self.renderer is not None:
            self.renderer.timings = self.timings
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        self._q: torch.Tensor | None = None
        self._qd: torch.Tensor | None = None
        self._prev_action: torch.Tensor | None = None
        self._frames: torch.Tensor | None = None
        self._progress = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._episode_return = torch.zeros(num_envs, dtype=torch.float32, device=self.device)

    def _make_renderer(self, task: Task, render: str, image_size: int, supersample: int, crop_static_rows: bool):
        if render == "differentiable":
            return DifferentiableRenderer(self.model, task, image_size, self.device, supersample, crop_static_rows)
        if not task.tracking_camera:
            return FixedCameraRenderer(self.model, task.camera, image_size, self.device, task.visual_bounds, supersample, crop_static_rows=crop_static_rows)
        if crop_static_rows:
            raise ValueError(f"task {task.name!r} has a tracking camera: no image rows are static, so crop_static_rows does not apply")
        return TrackingCameraRenderer(self.model, task.camera, task.camera_mount, image_size, self.device, supersample, task.floor_half_width)

    # -- contract -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, torch.Tensor]:
        """Reset every env (fresh init noise, reseeded if `seed` is given) and return the first observation."""
        if seed is not None:
            _check_int("seed", seed, minimum=0)
            self._generator.manual_seed(seed)
        self._q, self._qd = self.task.initial_state(self.num_envs, self._generator, self.device)
        self._prev_action = torch.zeros(self.num_envs, self.task.action_dim, device=self.device)
        self._progress.zero_()
        self._episode_return.zero_()
        if self.renderer is not None:
            frame = self._render(self._q)
            self._frames = frame.repeat(1, self.spec.frame_stack, 1, 1)
        return self._observation()

    def step(self, action: torch.Tensor, hold: torch.Tensor | None = None):
        """Advance every env one control step. Returns `(obs, reward, done, info)`, all `[N]`-batched.

        `hold` (bool `[N]`, optional): these envs do not move this step: their state, frames and
        episode counters stay as they are, their reward is 0 and they are not done (gymnasium's
        NEXT_STEP autoreset, where the step after an episode's end only shows the new episode's
        first observation; envs/gym_wrapper.py)."""
        if self._q is None:
            raise RuntimeError("call reset() before step()")
        self._check_action(action)
        action = action.to(torch.float32).clamp(-1.0, 1.0)
        q, qd = self.sim.step(self._q, self._qd, self.task.action_to_joint_f(action))
        reward, terminated = self.task.reward(q, qd, action), self.task.terminated(q, qd)
        if hold is None:  # training: no masking ops on the differentiable path
            self._progress += 1
        else:
            moving = ~hold.to(self.device, torch.bool)
            q, qd = torch.where(moving.unsqueeze(1), q, self._q), torch.where(moving.unsqueeze(1), qd, self._qd)
            reward, terminated = torch.where(moving, reward, 0.0), terminated & moving
            self._progress += moving.long()
        self._episode_return += reward.detach()
        truncated = (self._progress >= self.task.episode_length) & ~terminated
        if hold is not None:
            truncated &= moving
        done = terminated | truncated

        info: dict = {"terminated": terminated, "truncated": truncated}
        info["terminal_obs"] = {"state": self._state_obs(q, qd, action)}
        finished = done.nonzero().flatten()
        if finished.numel() > 0:
            info["episode_returns"] = self._episode_return[finished].clone()
            info["episode_lengths"] = self._progress[finished].clone()
            if self.renderer is not None:
                info["terminal_obs"]["pixels"] = self._terminal_pixels(q, finished)
            q, qd = self._reset_envs(q, qd, done, finished)
        else:
            info["episode_returns"] = self._episode_return.new_zeros(0)
            info["episode_lengths"] = self._progress.new_zeros(0)
        self._q, self._qd = q, qd
        previous_action = self._prev_action
        self._prev_action = torch.where(done.unsqueeze(1), torch.zeros_like(action), action)
        if hold is not None:
            self._prev_action = torch.where(moving.unsqueeze(1), self._prev_action, previous_action)
        if self.renderer is not None:
            # A new tensor every step: callers (replay buffers) may keep the previous observation.
            frame = self._render(q)
            previous_frames = self._frames
            self._frames = torch.cat([self._frames[:, 3:], frame], dim=1)
            if finished.numel() > 0:  # out of place: differentiable frames keep their graph
                restarted = done.view(-1, 1, 1, 1)
                self._frames = torch.where(restarted, frame.repeat(1, self.spec.frame_stack, 1, 1), self._frames)
            if hold is not None:
                self._frames = torch.where(moving.view(-1, 1, 1, 1), self._frames, previous_frames)
        return self._observation(), reward, done, info

    def _render(self, q: torch.Tensor) -> torch.Tensor:
        if self.pixel_grad:
            return self.renderer.render(q)
        with torch.no_grad():
            return self.renderer.render(q)

    def _terminal_pixels(self, q: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
        """The frame stack each finished env would have shown; rows of other envs are unspecified.

        Replay-based methods bootstrap time-limit truncations from it. Only the finished worlds
        are traced (the cost of a render is per view).
        """
        with torch.no_grad():
            pixels = torch.cat([self._frames[:, 3:], self._frames[:, -3:]], dim=1)
            pixels[finished, -3:] = self.renderer.render(q, worlds=finished)
        return pixels

    def _reset_envs(self, q: torch.Tensor, qd: torch.Tensor, done: torch.Tensor, finished: torch.Tensor):
        """Swap fresh start states in for finished envs; constants carry no gradient, which cuts their graph."""
        q0, qd0 = self.task.initial_state(self.num_envs, self._generator, self.device)
        keep = ~done.unsqueeze(1)
        self._progress[finished] = 0
        self._episode_return[finished] = 0.0
        return torch.where(keep, q, q0), torch.where(keep, qd, qd0)

    def detach(self) -> None:
        """Cut the autograd graph here: later losses no longer reach earlier actions or states."""
        if self._q is not None:
            self._q = self._q.detach()
            self._qd = self._qd.detach()
            self._prev_action = self._prev_action.detach()
        if self._frames is not None:
            self._frames = self._frames.detach()

    # -- extras used by methods and tests -------------------------------------------------------
    @property
    def sim_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current generalised coordinates and velocities (with graph, if any)."""
        return self._q, self._qd

    def set_sim_state(self, q: torch.Tensor, qd: torch.Tensor) -> None:
        """Place every env at (q, qd), e.g. to differentiate w.r.t. a start state in tests."""
        self._check_batch("q", q, self.sim.q_dim, "q_dim")
        self._check_batch("qd", qd, self.sim.qd_dim, "qd_dim")
        self._q, self._qd = q, qd
        if self.renderer is not None:
            self._frames = self._render(q).repeat(1, self.spec.frame_stack, 1, 1)

    @property
    def progress(self) -> torch.Tensor:
        """Steps taken in the current episode, per env."""
        return self._progress.clone()

    def _state_obs(self, q: torch.Tensor, qd: torch.Tensor, prev_action: torch.Tensor) -> torch.Tensor:
        obs = self.task.state_obs(q, qd)
        return torch.cat([obs, prev_action], dim=-1) if self.task.observes_previous_action else obs

    def _observation(self) -> dict[str, torch.Tensor]:
        obs = {"state": self._state_obs(self._q, self._qd, self._prev_action)}
        if self._frames is not None:
            obs["pixels"] = self._frames
        return obs

    def _check_action(self, action) -> None:
        self._check_batch("action", action, self.task.action_dim, "action_dim")

    def _check_batch(self, name: str, value, width: int, width_name: str) -> None:
        """A finite floating-point tensor `[num_envs, width]` on the env's device, or an error naming what is wrong."""
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        expected = (self.num_envs, width)
        if tuple(value.shape) != expected:
            raise ValueError(f"{name} must have shape {expected} (num_envs, {width_name}), got {tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        if value.device != self.device:
            raise ValueError(f"{name} is on {value.device} but the env is on {self.device}")
        finite = torch.isfinite(value.detach())
        if not bool(finite.all()):
            bad = (~finite).any(dim=1).nonzero().flatten().tolist()
            raise ValueError(f"{name} contains NaN or inf in env(s) {bad[:10]}")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
