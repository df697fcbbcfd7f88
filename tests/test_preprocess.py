"""Views and tensors: tiles cover every pixel (brute-force check), tensors follow the spec."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.detectors.preprocess import NonFiniteInput, tile_boxes, to_tensor, views
from pipeline.detectors.registry import InputSpec


@settings(max_examples=200, deadline=None)
@given(width=st.integers(1, 700), height=st.integers(1, 700))
def test_tiles_cover_every_pixel_and_stay_inside(width, height):
    boxes = tile_boxes(width, height)
    covered = np.zeros((height, width), bool)
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        covered[top:bottom, left:right] = True
    assert covered.all() and len(boxes) == 4
    if width >= 8:  # neighbours overlap, so a person on a tile border is whole in at least one tile
        (_, _, r0, _), (l1, _, _, _) = boxes[0], boxes[1]
        assert l1 < r0


def test_small_images_are_not_tiled():
    img = Image.new("RGB", (300, 200))
    assert len(views(img, tiles=True, tile_min_side=400)) == 1
    assert len(views(Image.new("RGB", (512, 384)), tiles=True, tile_min_side=400)) == 5
    assert len(views(Image.new("RGB", (512, 384)), tiles=False, tile_min_side=400)) == 1


def test_tensor_layout_channels_and_normalisation():
    red = Image.new("RGB", (40, 20), (255, 0, 0))
    nchw = to_tensor(red, InputSpec(size=32, layout="NCHW", channels="BGR", scale=1 / 255, mean=(0.5, 0.5, 0.5),
                                    std=(0.5, 0.5, 0.5)))
    assert nchw.shape == (3, 32, 32) and nchw.dtype == np.float32
    assert np.allclose(nchw[2], 1.0) and np.allclose(nchw[0], -1.0)  # red is the last channel in BGR
    nhwc = to_tensor(red, InputSpec(size=300, layout="NHWC", dtype="uint8"))
    assert nhwc.shape == (300, 300, 3) and nhwc.dtype == np.uint8 and (nhwc[..., 0] == 255).all()
    boxed = to_tensor(red, InputSpec(size=32, resize="letterbox", layout="NHWC", dtype="uint8"))
    assert (boxed[:16, :, 0] == 255).all() and (boxed[16:, :, 0] == 0).all()  # aspect kept, padded below
    cropped = to_tensor(red, InputSpec(size=224, resize="resize_center_crop", resize_to=256))
    assert cropped.shape == (3, 224, 224)


def test_centred_letterbox_pads_both_sides_and_black_becomes_the_range_floor():
    # MediaPipe's pose detector: centred letterbox, pixels to [-1, 1] (x / 255 - 0.5) / 0.5, so the
    # black padding is exactly -1, the value MediaPipe pads with.
    wide = Image.new("RGB", (40, 20), (255, 255, 255))
    spec = InputSpec(size=32, resize="letterbox", align="center", layout="NHWC", scale=1 / 255,
                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    tensor = to_tensor(wide, spec)
    assert tensor.shape == (32, 32, 3) and tensor.dtype == np.float32
    assert np.allclose(tensor[:8], -1.0) and np.allclose(tensor[24:], -1.0)  # 8 rows above, 8 below
    assert np.allclose(tensor[8:24], 1.0)
    palm = to_tensor(wide, InputSpec(size=32, resize="letterbox", align="center", layout="NHWC", scale=1 / 255))
    assert palm.min() == 0.0 and palm.max() == np.float32(1.0) and np.allclose(palm[:8], 0.0)  # [0, 1], pad 0
    tall = to_tensor(Image.new("RGB", (10, 40), (255, 255, 255)), spec)
    assert np.allclose(tall[:, :12], -1.0) and np.allclose(tall[:, 20:], -1.0) and np.allclose(tall[:, 12:20], 1.0)


def computed_tensor(img: Image.Image, spec: InputSpec) -> np.ndarray:
    """The oracle: the float tensor computed over the whole view, as to_tensor did before it looked values up."""
    pixels = np.asarray(to_tensor(img, dataclasses.replace(spec, dtype="uint8", layout="NHWC")))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        array: np.ndarray = pixels.astype(np.float32) * np.float32(spec.scale)
        array = (array - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if not np.isfinite(array).all():
        raise NonFiniteInput("oracle")
    return np.ascontiguousarray(array.transpose(2, 0, 1) if spec.layout == "NCHW" else array)


finite = st.floats(-300, 300, allow_nan=False, width=32)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 40), layout=st.sampled_from(["NCHW", "NHWC"]),
       channels=st.sampled_from(["RGB", "BGR"]), resize=st.sampled_from(["stretch", "letterbox"]),
       scale=st.one_of(st.sampled_from([1.0, 1 / 255, 1 / 127.5, 2.0**-8]), finite),
       mean=st.tuples(finite, finite, finite),
       std=st.tuples(*[st.one_of(st.floats(2.0**-10, 300, width=32), st.floats(-300, -(2.0**-10), width=32))] * 3))
def test_a_float_tensor_is_bit_for_bit_the_one_computed_over_the_whole_view(seed, size, layout, channels, resize,
                                                                          scale, mean, std):
    """to_tensor looks each pixel value up in a 256-entry table per channel instead of computing (value x
    scale - mean) / std over the view: the tensor must be the computed one, bit for bit (scores, and with
    them every decision and the held-out figures, rest on it), whatever the normalisation, the channel order
    and the layout."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (rng.integers(1, 60), rng.integers(1, 60), 3), dtype=np.uint8))
    spec = InputSpec(size=size, layout=layout, channels=channels, resize=resize, scale=scale, mean=mean, std=std)
    try:
        expected = computed_tensor(img, spec)
    except NonFiniteInput:
        expected = None
    if expected is None:  # the table covers every value a view can hold: refused at least as often
        with pytest.raises(NonFiniteInput):
            to_tensor(img, spec)
        return
    got = to_tensor(img, spec)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


def test_a_normalisation_that_overflows_for_any_pixel_value_is_refused():
    """The finiteness check covers all 256 values of each channel, not only those a view happens to hold: a dark
    photo would otherwise pass a normalisation that overflows on the next, brighter one."""
    dark = Image.new("RGB", (8, 8), (3, 3, 3))
    with pytest.raises(NonFiniteInput):
        to_tensor(dark, InputSpec(size=8, scale=2.0e36))
    assert np.isfinite(to_tensor(dark, InputSpec(size=8, scale=1 / 255))).all()
