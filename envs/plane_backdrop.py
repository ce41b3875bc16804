"""The tracking camera's static backdrop (checker floor and grey wall, both planes) in closed form.

Newton's `SensorCamera` finds a pixel's backdrop surface by a BVH ray query, samples the floor's
texture and shades with nine `pow` calls; for two planes that is almost all overhead. The kernel
here intersects each camera ray with every backdrop plane directly and shades the nearest hit with
the same Warp functions, in the same float32 operation order, as Newton's render megakernel
(pinned Newton 1.8: `newton/_src/sensors/sensor_camera_render/render.py`,
`raycast.ray_intersect_shape` / `ray_intersect_plane`, `textures.sample_texture_plane`,
`lighting.py`, `tiling.pack_rgba_to_uint32`), reading the shape, texture and light arrays of a
real `SensorCamera` built on the backdrop model. It also does the depth test against the traced
bodies and writes the final planar RGB bytes, so a render is one body trace plus this one kernel.

Shading is cached, not approximated: with directional lights only, a plane's shaded colour depends
on nothing but the plane and the texel the texture returns, so it is computed once per (plane,
texel) by the same shading function; each pixel finds its texel (on CPU with the index arithmetic
of Warp's CPU sampler, `cpu_nearest_texel_index`; on CUDA by sampling the texture as Newton does
and matching the colour exactly). Work that does not depend on the view (the rays' world
directions for the trackers' fixed rotation, their directions in each plane's frame, the planes'
inverse transforms) is done once, by the same functions on the same inputs. The images are
byte-identical to the traced ones on CPU (tests/test_tracking_camera.py); on CUDA the path keeps
Newton's per-pixel operations but has not been checked on a GPU.

Not reproduced, and refused at construction: shadows, anti-aliasing (single-ray bundles only),
linear colour output, shapes other than planes, hidden shapes, point and spot lights. Exact ties
between two planes' distances go to the lower shape index here and to the BVH's visiting order in
Newton; the floor and the wall meet along one line only, where such a tie would have to happen
bit for bit.
"""

from __future__ import annotations

import functools

import newton
import numpy as np
import warp as wp
from newton._src.core import MAXVAL
from newton._src.geometry import GeoType, raycast
from newton._src.sensors.sensor_camera_render import textures, tiling
from newton._src.sensors.sensor_camera_render.types import (
    AntiAliasing,
    LightType,
    TextureData,
)
from newton._src.utils.color import ColorSpace, linear_to_srgb_wp, srgb_to_linear_wp
from newton.sensors import SensorCamera


@wp.func
def _light_contribution(
    light_active: wp.bool,
    light_type: wp.int32,
    light_position: wp.vec3f,
    light_orientation: wp.vec3f,
    normal: wp.vec3f,
    hit_point: wp.vec3f,
) -> wp.float32:
    """Newton's `compute_lighting` without its shadow ray (the backdrop's config has shadows off)."""
    light_contribution = wp.float32(0.0)
    if not light_active:
        return light_contribution
    L = wp.vec3f(0.0, 0.0, 0.0)
    dist_to_light = wp.float32(MAXVAL)
    attenuation = wp.float32(1.0)
    if light_type == 1:  # directional light
        L = wp.normalize(-light_orientation)
    else:
        to_light = light_position - hit_point
        dist_to_light = wp.length(to_light)
        L = wp.normalize(to_light)
        attenuation = 1.0 / (1.0 + 0.02 * dist_to_light * dist_to_light)
        if light_type == 0:  # spot light
            spot_dir = wp.normalize(light_orientation)
            cos_theta = wp.dot(-L, spot_dir)
            inner = 0.95
            outer = 0.85
            spot_factor = wp.min(1.0, wp.max(0.0, (cos_theta - outer) / (inner - outer)))
            attenuation = attenuation * spot_factor
    ndotl = wp.max(0.0, wp.dot(normal, L))
    if ndotl == 0.0:
        return light_contribution
    visible = wp.float32(1.0)
    return ndotl * attenuation * visible


@wp.func
def _shade(
    shape_color: wp.vec3f,
    textured: wp.bool,
    tex_color: wp.vec3f,
    normal: wp.vec3f,
    hit_point: wp.vec3f,
    light_count: wp.int32,
    light_active: wp.array[wp.bool],
    light_type: wp.array[wp.int32],
    light_positions: wp.array[wp.vec3f],
    light_orientations: wp.array[wp.vec3f],
    light_colors: wp.array[wp.vec3f],
    ambient_lighting: wp.array[wp.vec3f],
) -> wp.uint32:
    """Packed sRGB colour of a hit, as Newton's `shade_trace` and its megakernel's output step."""
    albedo_color = srgb_to_linear_wp(shape_color)
    if textured:
        albedo_color = wp.cw_mul(albedo_color, srgb_to_linear_wp(tex_color))
    sky = ambient_lighting[0]
    ground = ambient_lighting[1]
    up = ambient_lighting[2]
    len_n = wp.length(normal)
    n = normal if len_n > 0.0 else up
    n = wp.normalize(n)
    hemispheric = 0.5 * (wp.dot(n, up) + 1.0)
    ambient_color = sky * hemispheric + ground * (1.0 - hemispheric)
    shaded_color = wp.cw_mul(albedo_color, ambient_color)
    for light_index in range(light_count):
        contribution = _light_contribution(
            light_active[light_index], light_type[light_index], light_positions[light_index],
            light_orientations[light_index], normal, hit_point,
        )  # fmt: skip
        shaded_color = shaded_color + wp.cw_mul(albedo_color, light_colors[light_index]) * contribution
    return tiling.pack_rgba_to_uint32(linear_to_srgb_wp(shaded_color), 1.0)


@wp.func
def _plane_normal(shape_transform: wp.transformf) -> wp.vec3f:
    """The world normal `ray_intersect_shape` returns for every hit of a plane."""
    return wp.normalize(wp.transform_vector(shape_transform, wp.vec3f(0.0, 0.0, 1.0)))


@wp.func
def _plane_uv(hit_point: wp.vec3f, inv_transform: wp.transformf, repeat: wp.vec2f) -> wp.vec2f:
    """The coordinates `textures.sample_texture_plane` samples its texture at."""
    local = wp.transform_point(inv_transform, hit_point)
    uv = wp.vec2f(local[0], local[1])
    return textures.flip_v(wp.cw_mul(uv, repeat))


@wp.func
def _nearest_wrapped_texel(coord: wp.float32, size: wp.int32) -> wp.int32:
    """The texel Warp's CPU sampler reads for `coord` (normalized, CLOSEST, WRAP): `cpu_nearest_texel_index`."""
    texel = wp.floor(wp.mod(wp.float64(coord), wp.float64(1.0)) * wp.float64(size))
    index = wp.int32(texel) % size
    if index < 0:
        index += size
    return index


@functools.cache
def _kernels(fast_math: bool, max_distance: float, backface_culling: bool, cpu: bool) -> tuple[wp.Kernel, wp.Kernel, wp.Kernel]:
    """The palette, ray and render kernels for one render config (compiled as Newton's megakernel is).

    `cpu`: the per-pixel work that does not depend on the view (the rays' world directions, their
    directions in each plane's frame) is done once, by the same functions on the same inputs
    (Warp's CPU compiler fuses multiply-adds within one expression only, so the float results do
    not depend on which kernel computes them), and a pixel finds its texel with the arithmetic of
    Warp's CPU sampler and reads its pre-shaded colour. Otherwise (CUDA, which contracts across
    inlined functions and whose hardware sampler is not replicated here) each pixel runs Newton's
    own ray transform, plane intersection and texture sampling, and looks the sampled colour up in
    the palette.
    """

    @wp.kernel(enable_backward=False, module="unique", module_options={"fast_math": fast_math})
    def prepare_rays(
        camera_rays: wp.array4d[wp.vec3f],
        camera_rotation: wp.transformf,
        shape_inv_transforms: wp.array[wp.transformf],
        out_offsets: wp.array2d[wp.vec3f],
        out_dirs: wp.array2d[wp.vec3f],
        out_dirs_local: wp.array3d[wp.vec3f],
    ):
        """`transform_point`'s rotated ray origin, `transform_vector`'s world direction, and the
        direction in each plane's frame (`map_ray_to_local`), for a camera with this rotation."""
        py, px = wp.tid()
        out_offsets[py, px] = wp.transform_vector(camera_rotation, camera_rays[py, px, 0, 0])
        direction = wp.transform_vector(camera_rotation, camera_rays[py, px, 0, 1])
        out_dirs[py, px] = direction
        for si in range(out_dirs_local.shape[0]):
            out_dirs_local[si, py, px] = wp.transform_vector(shape_inv_transforms[si], direction)

    @wp.kernel(enable_backward=False, module="unique", module_options={"fast_math": fast_math})
    def shade_palette(
        shape_colors: wp.array[wp.vec3f],
        shape_transforms: wp.array[wp.transformf],
        shape_texture_ids: wp.array[wp.int32],
        texture_data: wp.array[TextureData],
        light_count: wp.int32,
        light_active: wp.array[wp.bool],
        light_type: wp.array[wp.int32],
        light_positions: wp.array[wp.vec3f],
        light_orientations: wp.array[wp.vec3f],
        light_colors: wp.array[wp.vec3f],
        ambient_lighting: wp.array[wp.vec3f],
        out_inv_transforms: wp.array[wp.transformf],
        out_texel_colors: wp.array3d[wp.vec3f],
        out_packed: wp.array3d[wp.uint32],
    ):
        """Each plane's inverse transform, and the shaded colour of each of its texels (untextured: [0, 0])."""
        shape, y, x = wp.tid()
        if x == 0 and y == 0:
            out_inv_transforms[shape] = wp.transform_inverse(shape_transforms[shape])
        texture_index = shape_texture_ids[shape]
        tex_color = wp.vec3f(1.0)
        if texture_index > -1:
            height = out_packed.shape[1]
            width = out_packed.shape[2]
            if y >= height or x >= width:
                return
            uv = wp.vec2f(
                (wp.float32(x) + 0.5) / wp.float32(width),
                (wp.float32(y) + 0.5) / wp.float32(height),
            )
            tex_color = textures.sample_texture_2d(uv, texture_data[texture_index])
        elif x > 0 or y > 0:
            return
        out_texel_colors[shape, y, x] = tex_color
        out_packed[shape, y, x] = _shade(
            shape_colors[shape], texture_index > -1, tex_color, _plane_normal(shape_transforms[shape]), wp.vec3f(0.0),
            light_count, light_active, light_type, light_positions, light_orientations, light_colors, ambient_lighting,
        )  # fmt: skip

    @wp.kernel(enable_backward=False, module="unique", module_options={"fast_math": fast_math})
    def render_planes(
        camera_rays: wp.array4d[wp.vec3f],
        camera_transforms: wp.array[wp.transformf],
        ray_offsets: wp.array2d[wp.vec3f],
        ray_dirs: wp.array2d[wp.vec3f],
        ray_dirs_local: wp.array3d[wp.vec3f],
        shape_count: wp.int32,
        shape_types: wp.array[wp.int32],
        shape_sizes: wp.array[wp.vec3f],
        shape_colors: wp.array[wp.vec3f],
        shape_transforms: wp.array[wp.transformf],
        shape_inv_transforms: wp.array[wp.transformf],
        shape_texture_ids: wp.array[wp.int32],
        texture_data: wp.array[TextureData],
        texel_colors: wp.array3d[wp.vec3f],
        texel_packed: wp.array3d[wp.uint32],
        light_count: wp.int32,
        light_active: wp.array[wp.bool],
        light_type: wp.array[wp.int32],
        light_positions: wp.array[wp.vec3f],
        light_orientations: wp.array[wp.vec3f],
        light_colors: wp.array[wp.vec3f],
        ambient_lighting: wp.array[wp.vec3f],
        body_color: wp.array3d[wp.uint32],
        body_depth: wp.array3d[wp.float32],
        body_row0: wp.int32,
        body_col0: wp.int32,
        out_rgb: wp.array4d[wp.uint8],
        out_depth: wp.array3d[wp.float32],
    ):
        view, py, px = wp.tid()
        camera_transform = camera_transforms[view]
        if wp.static(cpu):
            ray_origin_world = wp.transform_get_translation(camera_transform) + ray_offsets[py, px]
            ray_dir_world = ray_dirs[py, px]
        else:
            ray_origin_world = wp.transform_point(camera_transform, camera_rays[py, px, 0, 0])
            ray_dir_world = wp.transform_vector(camera_transform, camera_rays[py, px, 0, 1])
        # Closest hit: the BVH query only prunes planes that cannot be closer, so testing every
        # plane and keeping the strictly nearest one (below max_distance) picks the same plane.
        distance = wp.float32(wp.static(max_distance))
        shape = wp.int32(-1)
        if wp.dot(ray_dir_world, ray_dir_world) > 1.0e-12:
            for si in range(shape_count):
                hit_distance = wp.float32(-1.0)
                if wp.static(cpu):
                    origin_local = wp.transform_point(shape_inv_transforms[si], ray_origin_world)
                    hit_distance, _hit_normal = raycast.ray_intersect_plane(
                        origin_local,
                        ray_dirs_local[si, py, px],
                        shape_sizes[si],
                        wp.static(backface_culling),
                    )
                else:
                    hit_distance, _hit_normal = raycast.ray_intersect_shape(
                        shape_transforms[si], shape_sizes[si], shape_types[si], ray_origin_world, ray_dir_world,
                        wp.static(backface_culling),
                    )  # fmt: skip
                if hit_distance >= 0.0 and hit_distance < distance:
                    distance = hit_distance
                    shape = si
        if shape < 0:
            out_depth[view, py, px] = wp.float32(0.0)  # Newton's clear depth and colour (a miss)
        else:
            out_depth[view, py, px] = distance

        # The depth test of the traced renderer: a body hit in front of the plane (or of nothing).
        # The bodies were traced in a window of the image; outside it they are a miss.
        packed = wp.uint32(0)
        b_depth = wp.float32(0.0)
        by = py - body_row0
        bx = px - body_col0
        if by >= 0 and by < body_depth.shape[1] and bx >= 0 and bx < body_depth.shape[2]:
            b_depth = body_depth[view, by, bx]
        if b_depth > 0.0 and (shape < 0 or b_depth < distance):
            packed = body_color[view, by, bx]
        elif shape >= 0:
            texture_index = shape_texture_ids[shape]
            if texture_index < 0:
                packed = texel_packed[shape, 0, 0]
            else:
                hit_point = ray_origin_world + ray_dir_world * distance
                if wp.static(cpu):
                    uv = _plane_uv(
                        hit_point,
                        shape_inv_transforms[shape],
                        texture_data[texture_index].repeat,
                    )
                    ty = _nearest_wrapped_texel(uv[1], texel_packed.shape[1])
                    tx = _nearest_wrapped_texel(uv[0], texel_packed.shape[2])
                    packed = texel_packed[shape, ty, tx]
                else:
                    tex_color = textures.sample_texture_plane(hit_point, shape_transforms[shape], texture_data[texture_index])
                    # The sampled colour is one of the texels': the first equal one's shading.
                    found = wp.bool(False)
                    for ty in range(texel_packed.shape[1]):
                        for tx in range(texel_packed.shape[2]):
                            c = texel_colors[shape, ty, tx]
                            if not found and c[0] == tex_color[0] and c[1] == tex_color[1] and c[2] == tex_color[2]:
                                packed = texel_packed[shape, ty, tx]
                                found = wp.bool(True)
                    if not found:
                        packed = _shade(
                            shape_colors[shape], True, tex_color, _plane_normal(shape_transforms[shape]), hit_point,
                            light_count, light_active, light_type, light_positions, light_orientations, light_colors,
                            ambient_lighting,
                        )  # fmt: skip
        out_rgb[view, 0, py, px] = wp.uint8(packed & wp.uint32(0xFF))
        out_rgb[view, 1, py, px] = wp.uint8((packed >> wp.uint32(8)) & wp.uint32(0xFF))
        out_rgb[view, 2, py, px] = wp.uint8((packed >> wp.uint32(16)) & wp.uint32(0xFF))

    return shade_palette, prepare_rays, render_planes


class PlaneBackdrop:
    """Composites traced bodies over a planes-only scene drawn by `sensor`, without tracing the scene.

    `sensor` is the SensorCamera that would trace the scene (its lights, ambient light, textures and
    `config` are used as they are); `model` must contain planes only, all visible, in one world.
    Every camera pose passed to `render` must have the rotation `camera_rotation` (xyzw) and use
    the single-ray bundle `camera_rays`: the tracking cameras translate only.
    """

    def __init__(
        self,
        model: newton.Model,
        sensor: SensorCamera,
        config: SensorCamera.RenderConfig,
        camera_rays: wp.array,
        camera_rotation: wp.quatf,
    ):
        if not (model.shape_type.numpy() == int(GeoType.PLANE)).all():
            raise ValueError("PlaneBackdrop draws planes only")
        if model.bvh_shape_count_enabled != model.shape_count:
            raise ValueError("PlaneBackdrop draws every shape: hidden shapes are not supported")
        if config.enable_shadows or config.output_color_space != ColorSpace.SRGB or config.anti_aliasing != AntiAliasing.NONE:
            raise ValueError("PlaneBackdrop reproduces Newton's shading without shadows, in sRGB, one ray per pixel")
        if not config.enable_ambient_lighting:
            raise ValueError("PlaneBackdrop reproduces Newton's shading with ambient lighting on")
        if camera_rays.shape[2] != 1:
            raise ValueError("PlaneBackdrop traces one ray per pixel")
        context = sensor._render_context  # the arrays Newton's own kernel reads
        if not (context._lights_type.numpy()[: context.light_count] == int(LightType.DIRECTIONAL)).all():
            raise ValueError("PlaneBackdrop caches shading per texel: directional lights only")
        self.model = model
        device = model.device
        texture_ids = (
            context._shape_texture_ids.numpy() if config.enable_textures else np.full(model.shape_count, -1, dtype=np.int32)
        )
        used = [context._texture_data_source[t].texture for t in sorted(set(texture_ids[texture_ids >= 0].tolist()))]
        height, width = (
            max([1] + [t.height for t in used]),
            max([1] + [t.width for t in used]),
        )
        if any((t.height, t.width) != (height, width) for t in used):
            raise ValueError("PlaneBackdrop: the planes' textures must share one size")
        closest_wrap = all(
            t.filter_mode == wp.TextureFilterMode.CLOSEST and t.normalized_coords and t.num_mip_levels == 1
            and t.address_mode_u == int(wp.TextureAddressMode.WRAP) and t.address_mode_v == int(wp.TextureAddressMode.WRAP)
            for t in used
        )  # fmt: skip
        shade_palette, prepare_rays, self._kernel = _kernels(
            bool(config.enable_fast_math), float(config.max_distance), bool(config.enable_backface_culling), device.is_cpu and closest_wrap
        )  # fmt: skip
        texture_ids = wp.array(texture_ids, dtype=wp.int32, device=device)
        lights = [
            context.light_count,
            context._lights_active,
            context._lights_type,
            context._lights_position,
            context._lights_orientation,
            context._lights_color,
            context._get_ambient_lighting(),
        ]
        transforms = model.bvh_shape_world_transforms  # static shapes: as computed when the model's BVH was built
        inv_transforms = wp.zeros(model.shape_count, dtype=wp.transformf, device=device)
        texel_colors = wp.zeros((model.shape_count, height, width), dtype=wp.vec3f, device=device)
        texel_packed = wp.zeros((model.shape_count, height, width), dtype=wp.uint32, device=device)
        wp.launch(
            shade_palette,
            dim=(model.shape_count, height, width),
            inputs=[
                model.shape_color,
                transforms,
                texture_ids,
                context._texture_data,
                *lights,
            ],
            outputs=[inv_transforms, texel_colors, texel_packed],
            device=device,
        )
        rows, cols = camera_rays.shape[:2]
        offsets = wp.zeros((rows, cols), dtype=wp.vec3f, device=device)
        dirs = wp.zeros((rows, cols), dtype=wp.vec3f, device=device)
        dirs_local = wp.zeros((model.shape_count, rows, cols), dtype=wp.vec3f, device=device)
        rotation = wp.transformf(wp.vec3f(0.0, 0.0, 0.0), camera_rotation)
        wp.launch(
            prepare_rays,
            dim=(rows, cols),
            inputs=[camera_rays, rotation, inv_transforms],
            outputs=[offsets, dirs, dirs_local],
            device=device,
        )
        self._inputs = [
            camera_rays,
            offsets,
            dirs,
            dirs_local,
            model.shape_count,
            model.shape_type,
            model.shape_scale,
            model.shape_color,
            transforms,
            inv_transforms,
            texture_ids,
            context._texture_data,
            texel_colors,
            texel_packed,
            *lights,
        ]

    def render(
        self,
        camera_transforms: wp.array,
        body_color: wp.array,
        body_depth: wp.array,
        body_origin: tuple[int, int],
        out_rgb: wp.array,
        out_depth: wp.array,
    ) -> None:
        """Fill `out_rgb` (uint8 [V, 3, H, W]) with the bodies (packed colour and depth [V, h, w] traced
        in the window at row, column `body_origin`) over the planes, and `out_depth` [V, H, W] with
        the planes' depth (0: no plane), for the V poses in `camera_transforms`."""
        views, _, height, width = out_rgb.shape
        camera_rays = self._inputs[0]
        wp.launch(
            self._kernel,
            dim=(views, height, width),
            inputs=[
                camera_rays,
                camera_transforms,
                *self._inputs[1:],
                body_color,
                body_depth,
                int(body_origin[0]),
                int(body_origin[1]),
            ],
            outputs=[out_rgb, out_depth],
            device=self.model.device,
        )
