"""What the differentiable renderer draws: the task's shapes as triangle meshes, and the paper's scene.

The paper's visual SHAC renders with PyTorch3D (HaoxiangYou/D.VA, `viewer/torch3d_robo`): each
MJCF geom is tessellated by trimesh (capsules from 16 profile points revolved in 8 sections,
spheres as icospheres of 3 subdivisions, boxes of 12 triangles on 8 shared corners), coloured
with the geom's rgba as a constant texture, and drawn over a textured floor and a "sky" plane with
one point light (ambient 0.4, diffuse 0.8, specular 0.1 (ant 0.3), shininess 64). Vertices are
shared, so PyTorch3D's per-vertex normals (area-weighted sums of the adjacent face normals) shade
every mesh smoothly, boxes included. `SCENES` below holds the paper's numbers per task;
`ShapeMeshes` tessellates the shapes of a Newton model the same way, with one deliberate change:
capsules get 16 sections, not 8. An octagon inscribed in a limb's circle shrinks its silhouette
by up to 8% of the radius; against Newton's ray tracer (exact capsules) the per-body silhouette
IoU at 84x84 was then 0.94 at worst (ant, humanoid), 0.96 or more with 16 sections
(tests/test_diff_render.py).

Floor texture: a black and white checkerboard of 1 m tiles at 2 texels per metre (the paper's
`checkerboard.png`, 400 x 400, a crop of x_dim*2 rows by y_dim*2 columns from its centre).
Sky texture: a vertical gradient from (0.4, 0.6, 0.8) at the top row of a 400 x 400 image to black
at the bottom, cast to 8 bits, with 1000 white 2 x 2 stars (the paper's `skybox.png`, cropped
likewise: x_dim*2 rows by z_dim*2 columns). The crop puts the gradient along the plane's x axis,
as in the paper. Its stars were placed by an unseeded generator; ours are seeded (same count,
size and distribution, other places). Both are sampled as PyTorch3D's TexturesUV does: bilinear,
align_corners, border padding, v flipped. The paper fuses every mesh's texture into one atlas,
whose rescaled uvs let the floor's far edge sample a neighbour's texels; each plane samples its own
texture here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

import newton
from envs.tasks.rotation import quat_to_matrix

AMBIENT = 0.4  # PointLights ambient_color x Materials ambient_color (1, default)
DIFFUSE = 0.8
SHININESS = 64.0  # pytorch3d Materials default
ZNEAR = 0.01  # FoVPerspectiveCameras(znear=0.01): PyTorch3D clips faces at znear / 2
BACKGROUND = (1.0, 1.0, 1.0)  # BlendParams default: pixels no face covers are white

# The paper's mesh loader: trimesh.creation.capsule(count=[16, 8]) and icosphere(subdivisions=3);
# capsules get 16 sections here instead of 8 (see the module docstring).
CAPSULE_PROFILE_POINTS = 16
CAPSULE_SECTIONS = 16
ICOSPHERE_SUBDIVISIONS = 3


@dataclass(frozen=True)
class Rect:
    """An axis-aligned textured rectangle: `normal_axis` is 2 for a floor (normal +z), 1 for a sky
    plane (normal -y, facing the cameras); `size` spans (x, y) for a floor and (x, z) for a sky."""

    centre: tuple[float, float, float]
    size: tuple[float, float]
    normal_axis: int

    @property
    def axes(self) -> tuple[int, int]:
        """The world axes of the texture's (v, u): v runs along x, u along y (floor) or z (sky)."""
        return (0, 1) if self.normal_axis == 2 else (0, 2)

    @property
    def normal(self) -> tuple[float, float, float]:
        return (0.0, 0.0, 1.0) if self.normal_axis == 2 else (0.0, -1.0, 0.0)


@dataclass(frozen=True)
class Scene:
    """The paper's lights and planes for one task (viewer/torch3d_robo/robot_renderer/<task>_renderer.py).

    `light` is a world position for a fixed camera and an offset from the camera mount for a
    tracking camera (the paper moves the light with the robot's root, as its camera)."""

    light: tuple[float, float, float]
    specular: float
    floor: Rect
    sky: Rect | None


def floor(centre, x_dim, y_dim) -> Rect:
    return Rect(centre, (x_dim, y_dim), normal_axis=2)


def sky(centre, x_dim, z_dim) -> Rect:
    return Rect(centre, (x_dim, z_dim), normal_axis=1)


# Planar tasks: the paper's light is at (x, 0, q_z + 2) with q_z the root's z slide; our mount is
# (x, 0, q_z + root height), hence the offsets 2 - 1.25 (hopper) and 2 - 0.7 (cheetah). The
# paper's cheetah floor is at z = -0.35 in its renderer's frame; ours is the simulator's ground, z = 0.
SCENES: dict[str, Scene] = {
    "cartpole": Scene((0.0, 0.0, 6.0), 0.1, floor((0.0, 0.0, 0.0), 10.0, 4.0), sky((0.0, 2.0, 1.0), 10.0, 10.0)),
    "hopper": Scene((0.0, 0.0, 0.75), 0.1, floor((10.0, 0.0, 0.0), 150.0, 2.0), sky((10.0, 1.0, 3.25), 150.0, 10.0)),
    "cheetah": Scene((0.0, 0.0, 1.3), 0.1, floor((10.0, 0.0, 0.0), 150.0, 2.0), sky((10.0, 1.0, 3.25), 150.0, 10.0)),
    "ant": Scene((0.0, 0.0, 6.0), 0.3, floor((10.0, 0.0, 0.0), 150.0, 10.0), sky((10.0, 5.0, 10.0), 150.0, 20.0)),
    "humanoid": Scene((0.0, 0.0, 2.0), 0.1, floor((10.0, 0.0, 0.0), 150.0, 20.0), None),
}


def scene_for(task_name: str) -> Scene:
    """The scene of `task_name`, or of its base task for a variant `<task>-<variant>` (cartpole-paper)."""
    for name in (task_name, task_name.split("-")[0]):
        if name in SCENES:
            return SCENES[name]
    raise ValueError(f"no differentiable-render scene for task {task_name!r}; known: {', '.join(sorted(SCENES))}")


# -- textures ----------------------------------------------------------------------------------------
TEXTURE_SIZE = 400  # the paper's texture images: 200 m at 2 texels per metre
TEXELS_PER_METRE = 2


def _centre_crop(image: np.ndarray, rows: float, cols: float) -> np.ndarray:
    h, w = image.shape[:2]
    return image[int((h - rows) / 2) : int((h + rows) / 2), int((w - cols) / 2) : int((w + cols) / 2)]


@functools.cache
def texture(rect: Rect) -> np.ndarray:
    """The rectangle's texture map [rows, cols, 3] in [0, 1] (rows along x; cols along y or z)."""
    size, res = TEXTURE_SIZE, TEXELS_PER_METRE
    if rect.normal_axis == 2:  # checkerboard, 1 m tiles of res x res texels, white where i + j is even
        tile = np.arange(size) // res
        image = np.where(((tile[:, None] + tile[None, :]) % 2 == 0)[..., None], 255, 0).repeat(3, axis=-1).astype(np.uint8)
    else:  # gradient from (0.4, 0.6, 0.8) at the top row to black, truncated to 8 bits, plus stars
        ratio = np.arange(size)[:, None] / size
        rows = ((1 - ratio) * np.array([0.4, 0.6, 0.8]) * 255).astype(np.uint8)
        image = np.repeat(rows[:, None, :], size, axis=1)
        rng = np.random.default_rng(0)
        half = res // 2
        for x, y in rng.integers(0, size, size=(1000, 2)):
            image[y - half : y + half, x - half : x + half] = 255  # numpy slicing, as the paper's script
    crop = _centre_crop(image, rect.size[0] * res, rect.size[1] * res)
    return crop.astype(np.float64) / 255.0


def sample_texture(texels: torch.Tensor, v: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup [M, 3] at uv [M] as PyTorch3D's TexturesUV (align_corners, border, v up).

    u indexes columns (u = 0: first), v rows from the bottom (v = 0: last row)."""
    rows, cols = texels.shape[:2]
    col = (u * (cols - 1)).clamp(0, cols - 1)
    row = ((1 - v) * (rows - 1)).clamp(0, rows - 1)
    c0, r0 = col.detach().floor().clamp(max=cols - 2).long(), row.detach().floor().clamp(max=rows - 2).long()
    fc, fr = (col - c0).unsqueeze(-1), (row - r0).unsqueeze(-1)
    top = texels[r0, c0] * (1 - fc) + texels[r0, c0 + 1] * fc
    bottom = texels[r0 + 1, c0] * (1 - fc) + texels[r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


# -- tessellation ------------------------------------------------------------------------------------
def _orient_outward(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Wind every face counter-clockwise seen from outside (the shapes are convex about the origin)."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    inward = np.einsum("fi,fi->f", np.cross(b - a, c - a), (a + b + c) / 3) < 0
    faces = faces.copy()
    faces[inward] = faces[inward][:, ::-1]
    return faces


def _revolve(profile: np.ndarray, sections: int) -> tuple[np.ndarray, np.ndarray]:
    """A surface of revolution about z from a profile [(radius, z)] running pole to pole."""
    angles = 2 * math.pi * np.arange(sections) / sections
    rings = profile[1:-1]
    ring_verts = np.stack(
        [rings[:, :1] * np.cos(angles), rings[:, :1] * np.sin(angles), np.repeat(rings[:, 1:], sections, axis=1)], axis=-1
    ).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, profile[0, 1]]], ring_verts, [[0.0, 0.0, profile[-1, 1]]]])
    top = len(verts) - 1
    j = np.arange(sections)
    k = (j + 1) % sections
    faces = [np.stack([np.zeros(sections, int), 1 + k, 1 + j], axis=1)]
    for ring in range(len(rings) - 1):
        lo, hi = 1 + ring * sections, 1 + (ring + 1) * sections
        faces += [np.stack([lo + j, lo + k, hi + k], axis=1), np.stack([lo + j, hi + k, hi + j], axis=1)]
    last = 1 + (len(rings) - 1) * sections
    faces.append(np.stack([np.full(sections, top), last + j, last + k], axis=1))
    faces = np.concatenate(faces)
    return verts, _orient_outward(verts, faces)


def capsule_mesh(radius: float, half_height: float) -> tuple[np.ndarray, np.ndarray]:
    """trimesh's capsule along z: 16 profile points on a half circle, split at the middle."""
    theta = np.linspace(-math.pi / 2, math.pi / 2, CAPSULE_PROFILE_POINTS)
    profile = np.stack([np.cos(theta), np.sin(theta)], axis=1) * radius
    profile[0, 0] = profile[-1, 0] = 0.0
    half = len(profile) // 2
    profile[:half, 1] -= half_height
    profile[half:, 1] += half_height
    return _revolve(profile, CAPSULE_SECTIONS)


def cylinder_mesh(radius: float, half_height: float) -> tuple[np.ndarray, np.ndarray]:
    """trimesh's cylinder (32 sections, flat caps)."""
    profile = np.array([[0.0, -half_height], [radius, -half_height], [radius, half_height], [0.0, half_height]])
    return _revolve(profile, 32)


def sphere_mesh(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """An icosphere: an icosahedron subdivided `ICOSPHERE_SUBDIVISIONS` times, projected to the sphere."""
    g = (1 + math.sqrt(5)) / 2
    verts = [(-1, g, 0), (1, g, 0), (-1, -g, 0), (1, -g, 0), (0, -1, g), (0, 1, g), (0, -1, -g), (0, 1, -g),
             (g, 0, -1), (g, 0, 1), (-g, 0, -1), (-g, 0, 1)]  # fmt: skip
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
             (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10),
             (8, 6, 7), (9, 8, 1)]  # fmt: skip
    verts = [np.array(v, dtype=np.float64) / np.linalg.norm(v) for v in verts]

    def middle(a: int, b: int, midpoint: dict[tuple[int, int], int]) -> int:
        """The vertex halfway between a and b on the sphere, shared by the two faces of edge (a, b)."""
        key = (min(a, b), max(a, b))
        if key not in midpoint:
            m = verts[a] + verts[b]
            verts.append(m / np.linalg.norm(m))
            midpoint[key] = len(verts) - 1
        return midpoint[key]

    for _ in range(ICOSPHERE_SUBDIVISIONS):
        midpoint: dict[tuple[int, int], int] = {}
        refined = []
        for a, b, c in faces:
            ab, bc, ca = middle(a, b, midpoint), middle(b, c, midpoint), middle(c, a, midpoint)
            refined += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = refined
    verts = np.array(verts) * radius
    return verts, _orient_outward(verts, np.array(faces))


def box_mesh(hx: float, hy: float, hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Eight shared corners and two triangles per side, as trimesh's box."""
    verts = np.array([[x, y, z] for x in (-hx, hx) for y in (-hy, hy) for z in (-hz, hz)])
    sides = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([tri for a, b, c, d in sides for tri in ((a, b, c), (a, c, d))])
    return verts, _orient_outward(verts, faces)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """PyTorch3D's `verts_normals`: per vertex, the sum of its faces' cross products (area-weighted
    normals), normalised."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    face_normals = np.cross(c - b, a - b)
    normals = np.zeros_like(verts)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-6)


@dataclass
class ShapeMeshes:
    """Every visible shape of one world as one triangle mesh in its body's frame.

    verts, normals [V, 3]; vert_body [V]; faces [F, 3] (into verts); face_body, face_shape [F] (body
    index within the world, shape index into the model); face_color [F, 3]."""

    verts: np.ndarray
    normals: np.ndarray
    vert_body: np.ndarray
    faces: np.ndarray
    face_body: np.ndarray
    face_shape: np.ndarray
    face_color: np.ndarray
    bodies_per_world: int

    @classmethod
    def from_model(cls, model: newton.Model) -> ShapeMeshes:
        shape_world = model.shape_world.numpy()
        visible = (model.shape_flags.numpy() & int(newton.ShapeFlags.VISIBLE)) != 0
        shapes = np.nonzero((shape_world == 0) & visible)[0]
        types, scales = model.shape_type.numpy(), model.shape_scale.numpy()
        bodies, xforms, colors = model.shape_body.numpy(), model.shape_transform.numpy(), model.shape_color.numpy()
        first_body = int(np.nonzero(model.body_world.numpy() == 0)[0].min())
        builders = {
            newton.GeoType.BOX: lambda s: box_mesh(*s[:3]),
            newton.GeoType.CAPSULE: lambda s: capsule_mesh(s[0], s[1]),
            newton.GeoType.CYLINDER: lambda s: cylinder_mesh(s[0], s[1]),
            newton.GeoType.SPHERE: lambda s: sphere_mesh(s[0]),
        }
        parts, offset = [], 0
        for s in shapes:
            kind = newton.GeoType(int(types[s]))
            if kind not in builders:
                raise ValueError(f"the differentiable renderer draws boxes, capsules, cylinders and spheres; shape {s} is a {kind.name}")
            if bodies[s] < 0:
                raise ValueError(f"the differentiable renderer draws shapes on bodies; shape {s} is static (the paper's planes are drawn by the scene)")
            verts, faces = builders[kind](scales[s].astype(np.float64))
            normals = vertex_normals(verts, faces)
            rot = quat_to_matrix(torch.as_tensor(xforms[s][3:], dtype=torch.float64)).numpy()
            parts.append((verts @ rot.T + xforms[s][:3], normals @ rot.T, faces + offset, bodies[s] - first_body, s, colors[s]))
            offset += len(verts)
        return cls(
            verts=np.concatenate([p[0] for p in parts]),
            normals=np.concatenate([p[1] for p in parts]),
            vert_body=np.concatenate([np.full(len(p[0]), p[3]) for p in parts]),
            faces=np.concatenate([p[2] for p in parts]),
            face_body=np.concatenate([np.full(len(p[2]), p[3]) for p in parts]),
            face_shape=np.concatenate([np.full(len(p[2]), p[4]) for p in parts]),
            face_color=np.concatenate([np.tile(p[5], (len(p[2]), 1)) for p in parts]),
            bodies_per_world=model.body_count // model.world_count,
        )
