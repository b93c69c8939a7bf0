"""``image.upscale``: tiling and blending, alpha, grayscale, bad models, controls, sessions."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("onnxruntime", reason="needs chainlib[models]")
onnx = pytest.importorskip("onnx", reason="needs chainlib[models]")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import chainlib as cl  # noqa: E402
from chainlib import cli, samples  # noqa: E402
from chainlib.api.context import NullContext  # noqa: E402
from chainlib.errors import ChainError  # noqa: E402
from chainlib.nodes.upscale import model as model_mod  # noqa: E402
from chainlib.nodes.upscale import model_info, upscale  # noqa: E402
from chainlib.nodes.upscale.model import SESSIONS, threads_for  # noqa: E402
from chainlib.nodes.upscale.tiles import grid  # noqa: E402
from tests.conftest import wait_until  # noqa: E402


def photo(h: int = 150, w: int = 230, seed: int = 3) -> np.ndarray[Any, Any]:
    """Smooth colour plus sharp detail (edges make seams visible)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.dstack([x / w, y / h, 0.5 + 0.5 * np.sin(x / 7 + y / 11)]) * 200
    base += rng.integers(0, 56, (h, w, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def diff(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> int:
    assert a.shape == b.shape
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


# -- tiling --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tile", "overlap"), [(64, 16), (48, 8), (100, 16), (37, 12), (32, 4)])
def test_tiled_is_within_one_level_of_untiled(x2: str, tile: int, overlap: int) -> None:
    image = photo()
    whole = upscale(image, x2, tile=1024)
    assert whole.shape == (300, 460, 3) and whole.dtype == np.uint8
    assert diff(upscale(image, x2, tile=tile, overlap=overlap), whole) <= 1


def test_without_overlap_the_seams_show(x2: str) -> None:
    # the check above is not vacuous: cutting tiles without overlap changes pixels at the seams
    image = photo()
    assert diff(upscale(image, x2, tile=64, overlap=0), upscale(image, x2, tile=1024)) > 1


def test_a_result_over_the_per_image_limit_is_refused_before_inference(
    x2: str, image_limit: Callable[[float], None]
) -> None:
    image = np.zeros((600, 600, 3), np.uint8)  # x2: 1200x1200 RGB, 4 MB
    image_limit(2)
    with pytest.raises(ValueError, match=r"image: the result 1200x1200 with 3 channel\(s\) "
                                         r"is 4 MB, over the 2 MB limit per image"):
        upscale(image, x2)


def test_scale_is_read_from_the_model(media: Path) -> None:
    x3 = samples.model(media / "x3.onnx", scale=3)
    assert model_info(str(x3)).scale == 3
    image = photo(40, 50)
    out = upscale(image, str(x3), tile=24, overlap=4)
    assert out.shape == (120, 150, 3)
    assert diff(out, upscale(image, str(x3))) <= 1


def test_sample_model_is_close_to_bilinear(x2: str) -> None:
    image = photo()
    bilinear = PILImage.fromarray(image).resize((460, 300), PILImage.Resampling.BILINEAR)
    assert np.abs(upscale(image, x2).astype(int) - np.asarray(bilinear)).mean() < 4


def test_sample_model_is_deterministic(media: Path, x2: str) -> None:
    again = samples.model(media / "again.onnx", scale=2)
    assert again.read_bytes() == Path(x2).read_bytes()


# -- alpha and grayscale ----------------------------------------------------------------------


def test_alpha_is_upscaled_with_pillow_alongside(x2: str) -> None:
    rgb = photo()
    alpha = np.tile(np.linspace(0, 255, 230, dtype=np.float32), (150, 1)).astype(np.uint8)
    out = upscale(np.dstack([rgb, alpha]), x2, tile=64)
    assert out.shape == (300, 460, 4)
    assert diff(out[:, :, :3], upscale(rgb, x2, tile=64)) == 0
    expected = PILImage.fromarray(alpha, "L").resize((460, 300), PILImage.Resampling.BICUBIC)
    assert diff(out[:, :, 3], np.asarray(expected)) == 0


def test_grayscale_in_gives_grayscale_out(x2: str) -> None:
    gray = photo()[:, :, 1].copy()
    out = upscale(gray, x2, tile=64)
    assert out.shape == (300, 460) and out.dtype == np.uint8
    rgb_out = upscale(np.dstack([gray] * 3), x2, tile=64)
    luma = np.asarray(PILImage.fromarray(rgb_out).convert("L"))
    assert diff(out, luma) <= 1


# -- other model shapes -----------------------------------------------------------------------


def _save(model: Any, path: Path) -> str:
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def _graph(nodes: list[Any], inp: list[Any], out: list[Any], inits: list[Any] = (), *,
           in_type: int = TensorProto.FLOAT) -> Any:
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("input", in_type, inp)],
                              [helper.make_tensor_value_info("output", in_type, out)],
                              list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def nearest_model(path: Path, channels: int, *, fixed: int | None = None) -> str:
    """A nearest-neighbour x2 upscaler for ``channels``-channel input (Resize)."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    side: list[Any] = [fixed, fixed] if fixed else ["h", "w"]
    out_side: list[Any] = [fixed * 2, fixed * 2] if fixed else ["h2", "w2"]
    node = helper.make_node("Resize", ["input", "", "scales"], ["output"], mode="nearest")
    return _save(_graph([node], [1, channels, *side], [1, channels, *out_side], [scales]), path)


def test_grayscale_model_runs_each_channel(tmp_path: Path) -> None:
    model = nearest_model(tmp_path / "gray.onnx", 1)
    assert model_info(model).channels == 1
    image = photo(30, 40)
    out = upscale(image, model, tile=16, overlap=4)
    assert diff(out, image.repeat(2, axis=0).repeat(2, axis=1)) == 0
    gray = image[:, :, 0].copy()
    assert diff(upscale(gray, model), gray.repeat(2, axis=0).repeat(2, axis=1)) == 0


def test_fixed_size_model_is_tiled_at_its_size(tmp_path: Path) -> None:
    model = nearest_model(tmp_path / "fixed.onnx", 3, fixed=32)
    assert model_info(model).fixed == (32, 32)
    expected = photo(70, 90).repeat(2, axis=0).repeat(2, axis=1)
    assert diff(upscale(photo(70, 90), model, tile=256), expected) == 0
    small = photo(20, 13)  # smaller than the model's input: padded, then cropped
    assert diff(upscale(small, model), small.repeat(2, axis=0).repeat(2, axis=1)) == 0


def test_float16_model(tmp_path: Path) -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["input", "", "scales"], ["output"], mode="nearest")
    model = _save(_graph([node], [1, 3, "h", "w"], [1, 3, "h2", "w2"], [scales],
                         in_type=TensorProto.FLOAT16), tmp_path / "half.onnx")
    assert model_info(model).float16
    image = photo(20, 30)
    assert diff(upscale(image, model), image.repeat(2, axis=0).repeat(2, axis=1)) == 0


class _Tiles(NullContext):
    """Counts the tiles (one checkpoint before each, and one at the end)."""

    def __init__(self) -> None:
        super().__init__("up")
        self.calls = 0

    def checkpoint(self) -> None:
        self.calls += 1


@pytest.mark.parametrize(("tile", "overlap", "size"), [(17, 8, 99), (100, 40, 581)])
def test_the_overlap_asked_for_is_used_and_blends_exactly(
    tmp_path: Path, tile: int, overlap: int, size: int
) -> None:
    """An overlap over a quarter of the tile (validation allows up to half) was cut to a quarter
    without a word. Used as asked, the last tile can overlap two others: the blend weights
    still add up to 1 there (a nearest-neighbour model shows any error as a wrong level)."""
    model = nearest_model(tmp_path / "nearest.onnx", 3)
    for shape in ((size, 9, 3), (9, size, 3)):
        image = np.full(shape, 250, np.uint8)
        ctx = _Tiles()
        out = upscale(image, model, tile=tile, overlap=overlap, ctx=ctx)
        assert ctx.calls == grid(shape[0], shape[1], (tile, tile), overlap).count + 1
        assert diff(out, image.repeat(2, axis=0).repeat(2, axis=1)) == 0


@pytest.mark.parametrize("block", [2, 4])
def test_model_that_needs_multiple_sizes_is_padded(tmp_path: Path, block: int) -> None:
    """Real-ESRGAN's x2 (x1) exports pixel-unshuffle their input by 2 (4): odd sides fail in
    the model. An odd image (smaller than a tile) and odd tiles are padded and cropped."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("SpaceToDepth", ["input"], ["packed"], blocksize=block),
             helper.make_node("DepthToSpace", ["packed"], ["plain"], blocksize=block, mode="DCR"),
             helper.make_node("Resize", ["plain", "", "scales"], ["output"], mode="nearest")]
    model = _save(_graph(nodes, [1, 3, "h", "w"], [1, 3, "h2", "w2"], [scales]),
                  tmp_path / "unshuffle.onnx")
    assert model_info(model).align == block
    for image, tile in ((photo(41, 63), 0), (photo(90, 70), 37)):
        assert diff(upscale(image, model, tile=tile, overlap=8),
                    image.repeat(2, axis=0).repeat(2, axis=1)) == 0
    assert model_info(nearest_model(tmp_path / "any.onnx", 3)).align == 1


# -- bad models -------------------------------------------------------------------------------


def bad_models(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (path, words the error must contain)."""
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf \x00\x01\x02" * 10)
    ident = helper.make_node("Identity", ["input"], ["output"])
    rank3 = _save(_graph([ident], [3, "h", "w"], [3, "h", "w"]), tmp_path / "rank3.onnx")
    five = _save(_graph([ident], [1, 5, "h", "w"], [1, 5, "h", "w"]), tmp_path / "five.onnx")
    pool = helper.make_node("AveragePool", ["input"], ["output"], kernel_shape=[2, 2],
                            strides=[2, 2])
    down = _save(_graph([pool], [1, 3, "h", "w"], [1, 3, "h2", "w2"]), tmp_path / "down.onnx")
    nhwc = _save(_graph([ident], [1, "h", "w", 3], [1, "h", "w", 3]), tmp_path / "nhwc.onnx")
    pth = tmp_path / "4x-Model.pth"
    pth.write_bytes(b"PK\x03\x04 a zip of tensors")
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(Path(nearest_model(tmp_path / "whole.onnx", 3)).read_bytes()[:60])
    return {
        "missing": (str(tmp_path / "nope.onnx"), "does not exist"),
        "folder": (str(folder), "is not a file"),
        "truncated": (str(truncated), "not a usable ONNX model"),
        "pytorch": (str(pth), "a PyTorch checkpoint: export it to ONNX first"),
        "nhwc": (nhwc, "channels last (NHWC)"),
        "garbage": (str(garbage), "not a usable ONNX model"),
        "rank3": (rank3, "rank-3"),
        "channels": (five, "5 channels"),
        "downscale": (down, "not an upscale"),
    }


@pytest.mark.parametrize("kind", ["missing", "garbage", "rank3", "channels", "downscale",
                                  "folder", "truncated", "nhwc", "pytorch"])
def test_bad_model_is_a_validation_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    path, words = bad_models(tmp_path)[kind]
    chain = cl.Chain()
    src = chain.add("core.constant", value=0)
    chain.add("image.upscale", image=src, model=path, id="up")
    with pytest.raises(ChainError) as err:
        chain.validate()
    assert (err.value.node, err.value.input) == ("up", "model")
    assert path in str(err.value) and words in str(err.value)


def test_bad_model_from_a_link_fails_one_item_naming_the_file(tmp_path: Path, x2: str) -> None:
    bad, _ = bad_models(tmp_path)["garbage"]
    chain = cl.Chain()
    src = chain.add("core.items", items=[x2, bad, x2])
    img = chain.add("core.constant", value=photo(10, 10))
    chain.add("image.upscale", image=img, model=src, id="up")
    run = cl.Runner(chain, on_error="skip")
    run.start()
    s = run.wait(60)
    assert (s.state, s.done, s.failed) == ("completed", 2, 1)
    assert s.failures[0].node == "up" and bad in s.failures[0].message


def test_bad_tile_settings_are_validation_errors(x2: str) -> None:
    for inputs, name in (({"tile": 20, "overlap": 10}, "overlap"), ({"tile": 4}, "tile"),
                         ({"overlap": -1}, "overlap")):
        chain = cl.Chain()
        src = chain.add("core.constant", value=0)
        chain.add("image.upscale", image=src, model=x2, id="up", **inputs)
        with pytest.raises(ChainError) as err:
            chain.validate()
        assert err.value.input == name


# -- the missing extra ------------------------------------------------------------------------


def test_missing_extra_is_marked_and_a_chain_error_with_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], x2: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    chain = cl.Chain()
    src = chain.add("core.constant", value=0)
    chain.add("image.upscale", image=src, model=x2, id="up")
    with pytest.raises(ChainError, match=r"node 'up'.*pip install 'chainlib\[models\]'"):
        chain.validate()
    assert cli.main(["nodes", "image.upscale"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("image.upscale (node) [not installed: pip install 'chainlib[models]']")
    assert cli.main(["nodes", "image.resize"]) == 0
    assert "not installed" not in capsys.readouterr().out
    # called directly without the package: the same advice
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    SESSIONS.clear()
    with pytest.raises(ChainError, match=r"pip install 'chainlib\[models\]'"):
        upscale(photo(8, 8), x2)
    SESSIONS.clear()


def test_providers_prefer_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeOrt:
        @staticmethod
        def get_available_providers() -> list[str]:
            return ["AzureExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(model_mod, "ort", lambda: FakeOrt)
    monkeypatch.delenv("CHAINLIB_ONNX_PROVIDERS", raising=False)
    assert model_mod.providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setenv("CHAINLIB_ONNX_PROVIDERS", "AzureExecutionProvider")
    assert model_mod.providers() == ["AzureExecutionProvider", "CPUExecutionProvider"]


# -- in a run: one shared session, controls between tiles -------------------------------------


def upscale_chain(model: str, image: np.ndarray[Any, Any], tile: int) -> cl.Chain:
    chain = cl.Chain()
    src = chain.add("core.constant", value=image)
    chain.add("image.upscale", image=src, model=model, tile=tile, overlap=4, id="up")
    return chain


def test_workers_share_one_session_with_threads_split(x2: str) -> None:
    SESSIONS.clear()
    chain = cl.Chain()
    src = chain.add("core.items", items=[photo(60, 70, seed) for seed in range(6)])
    chain.add("image.upscale", image=src, model=x2, tile=32, overlap=4)
    run = cl.Runner(chain, workers=2)
    run.start()
    assert run.wait(60).done == 6
    assert SESSIONS.cached() == [(str(Path(x2).resolve()), threads_for(2))]
    assert threads_for(2) * 2 <= max(2, model_mod.cpu_count())


@pytest.mark.parametrize("command", ["pause", "stop"])
def test_pause_and_stop_take_effect_within_one_tile(x2: str, command: str) -> None:
    image = photo(320, 320)
    chain = upscale_chain(x2, image, tile=20)  # 21 x 21 tiles
    tiles = 21 * 21
    run = cl.Runner(chain)
    run.start()
    progress: Callable[[], float] = lambda: run.status().nodes["up"].progress or 0.0  # noqa: E731
    wait_until(lambda: progress() > 0.05, what="some tiles done")
    ack = run.command(command)
    assert ack.accepted
    at_command = ack.status.nodes["up"].progress or 0.0
    final = "paused" if command == "pause" else "stopped"
    wait_until(lambda: run.status().state == final, what=final)
    # no tile started after the command except the one it raced with
    assert (progress() - at_command) * tiles <= 1.0 + 1e-9
    assert progress() < 1.0
    if command == "pause":
        run.resume()
        s = run.wait(60)
        assert s.state == "completed"
        assert diff(run.result("up"), upscale(image, x2, tile=20, overlap=4)) == 0
    else:
        assert run.wait(10).state == "stopped"
