"""Reading and writing image files: ``image.load``, ``image.load_folder``, ``image.save``."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import string
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Annotated, Any, Literal, TypedDict, cast

import numpy as np

from ...api import Context, Image, Item, Lazy, Range, iterator, node
from ...outputs import write_output
from .convert import IMAGE_EXTENSIONS, as_image, check_range, has_alpha, read_image, to_pil


class LoadResult(TypedDict):
    image: Image
    name: str


class FolderItem(TypedDict):
    image: Image
    name: str
    path: str
    subfolder: str


@node("image.load", reads=("path",))  # a constant file (a watermark): part of what items depend on
def load(path: str) -> LoadResult:
    """Load one image file (PNG, JPEG, BMP, GIF, TIFF, WebP) as an image and its name (the stem).

    The image is converted to the convention (``L``, ``RGB`` or ``RGBA``) and turned upright per
    its EXIF orientation. An unreadable or corrupt file raises ``ValueError`` naming the file.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"path: expected a file path, got {path!r}")
    image = read_image(path)
    return {"image": image, "name": Path(os.fspath(path)).stem}


# -- load_folder -------------------------------------------------------------------------------

_CHUNK = re.compile(r"(\d+)")


def _natural_key(rel: str) -> tuple[Any, ...]:
    """Sort key: path parts compared case-insensitively with digit runs compared as numbers."""
    parts = []
    for part in rel.split("/"):
        chunks = tuple(
            (0, int(c), "") if c.isdigit() else (1, 0, c.lower()) for c in _CHUNK.split(part) if c
        )
        parts.append(chunks)
    return (tuple(parts), rel)


def _check_folder(folder: str) -> Path:
    if not isinstance(folder, (str, os.PathLike)) or not os.fspath(folder):
        raise ValueError(f"folder: expected a folder path, got {folder!r}")
    root = Path(os.path.expanduser(os.fspath(folder)))
    try:
        st = root.stat()
    except FileNotFoundError:
        raise ValueError(f"folder: {os.fspath(folder)!r} does not exist") from None
    except OSError as exc:  # a name too long, a loop of links, no permission...
        raise ValueError(f"folder: cannot open {os.fspath(folder)!r}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"folder: {os.fspath(folder)!r} is not a folder")
    return root


def _matches(rel: str, pattern: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    target = rel if "/" in pattern else name
    return fnmatch.fnmatchcase(target.lower(), pattern.lower())


def list_images(folder: str, pattern: str = "*", recursive: bool = False) -> list[str]:
    """The image files under ``folder`` as sorted relative POSIX paths.

    Only files with an image extension count; hidden files and folders (starting with ``.``) are
    skipped. ``pattern`` is a case-insensitive glob matched against the file name, or against the
    relative path when it contains ``/``. The order is "natural" (``img2`` before ``img10``) and
    deterministic.
    """
    root = _check_folder(folder)
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern: expected a glob pattern such as '*.png', got {pattern!r}")
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for fn in filenames:
            if fn.startswith(".") or os.path.splitext(fn)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            rel = fn if rel_dir == "." else f"{rel_dir}/{fn}"
            if _matches(rel, pattern) and os.path.isfile(os.path.join(dirpath, fn)):
                found.append(rel)
    found.sort(key=_natural_key)
    return found


def _count(folder: str, pattern: str = "*", recursive: bool = False) -> int:
    return len(list_images(folder, pattern, recursive))


def _listing(folder: str, pattern: str = "*", recursive: bool = False) -> list[Item]:
    """The items of ``load_folder`` without their images: a dict of ``name``, ``path`` and
    ``subfolder`` each, labelled by the relative path, with the absolute path as source."""
    root = _check_folder(folder).resolve()
    items = []
    for rel in list_images(folder, pattern, recursive):
        parent = PurePosixPath(rel).parent.as_posix()
        value = {"name": PurePosixPath(rel).stem, "path": rel,
                 "subfolder": "" if parent == "." else parent}
        items.append(Item(value, label=rel, source=str(root.joinpath(*rel.split("/")))))
    return items


@iterator("image.load_folder", length=_count, listing=_listing,
          empty="no image file in {folder!r} matches {pattern!r}")
def load_folder(
    folder: str, pattern: str = "*", recursive: bool = False, ctx: Context | None = None
) -> Iterator[FolderItem]:
    """Load every image in a folder, one item each, in sorted (natural) order.

    Outputs per item: ``image``, ``name`` (file stem, for ``image.save``), ``path`` (relative POSIX
    path, also the item label) and ``subfolder`` (relative parent folder, ``""`` at the top; link
    it to ``image.save``'s ``subfolder`` to mirror the tree). ``pattern`` is a case-insensitive
    glob on the file name (on the relative path if it contains ``/``); ``recursive`` descends into
    sub-folders. Hidden files are skipped, and so are files this run's output folders record as
    written by chainlib (an in-place run never takes its own outputs as inputs). Decoding happens
    on the worker running the item.
    """
    session = ctx.outputs if ctx is not None else None
    listed = _listing(folder, pattern, recursive)
    if session is not None:
        listed = [it for it in listed if not session.is_output(str(it.source))]
        # Declared before the first item: no output of this run may replace any of them.
        session.add_inputs(str(it.source) for it in listed)
    for it in listed:
        value = {"image": Lazy(read_image, it.source), **it.value}
        # The item carries a dict of output values (with a Lazy image); the engine unpacks it.
        yield cast(FolderItem, Item(value, label=it.label, source=it.source))


# -- save --------------------------------------------------------------------------------------

SaveFormat = Literal["auto", "png", "jpeg", "webp", "bmp", "tiff"]
_FORMATS: dict[str, tuple[str, str]] = {  # format -> (Pillow format, extension)
    "png": ("PNG", ".png"),
    "jpeg": ("JPEG", ".jpg"),
    "webp": ("WEBP", ".webp"),
    "bmp": ("BMP", ".bmp"),
    "tiff": ("TIFF", ".tif"),
}
_EXT_FORMAT = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
_TEMPLATE_FIELDS = ("name", "index")
_MAX_NAME_BYTES = 255  # a file name on the common file systems


def _check_template(template: str) -> None:
    """Raise ``ValueError`` ("template: ...") for a template that cannot make a file name."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"template: invalid template {template!r}: {exc}") from None
    fields = {f for _, f, _, _ in parsed if f is not None}
    unknown = sorted(f for f in fields if f not in _TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(
            f"template: unknown field(s) {', '.join('{' + f + '}' for f in unknown)} in"
            f" {template!r}; available: {{name}}, {{index}}"
        )
    # refused before formatting: "{index:>1000000000}" would build a 1 GB string per item
    for _, _, spec, _ in parsed:
        for digits in re.findall(r"\d+", spec or ""):
            if int(digits) > _MAX_NAME_BYTES:
                raise ValueError(
                    f"template: a width or precision of {int(digits)} in {template!r} makes a "
                    f"name longer than a file name can be ({_MAX_NAME_BYTES} bytes)")


def _check_save(constants: Mapping[str, Any]) -> None:
    """At validation: a constant template can make file names."""
    template = constants.get("template")
    if isinstance(template, str):
        _check_template(template)


def _file_name(name: str, template: str, fmt: str, index: int) -> tuple[str, str]:
    """The output file name and the format to write it in."""
    if not isinstance(name, str):
        raise ValueError(f"name: expected a string, got {name!r}")
    _check_template(template)
    try:
        base = template.format(name=name, index=index)
    except (ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"template: cannot format {template!r}: {exc}") from None
    if not base or base in (".", "..") or "/" in base or "\\" in base or "\0" in base:
        raise ValueError(
            f"name: the file name {base!r} (from name={name!r}, template={template!r}) must be"
            " non-empty and contain no path separator (use subfolder for folders)"
        )
    stem, ext = os.path.splitext(base)
    known = _EXT_FORMAT.get(ext.lower())
    if fmt == "auto":
        fmt = known or "png"
        return (base if known else base + _FORMATS[fmt][1]), fmt
    if known == fmt:
        return base, fmt
    if known is not None and stem:
        base = stem  # "photo.jpg" saved as png becomes "photo.png"
    return base + _FORMATS[fmt][1], fmt


def _check_subfolder(subfolder: str) -> str:
    if not isinstance(subfolder, str):
        raise ValueError(f"subfolder: expected a relative folder path, got {subfolder!r}")
    sub = subfolder.replace("\\", "/").strip("/")
    if subfolder.startswith(("/", "\\")) or os.path.isabs(subfolder) or ".." in sub.split("/"):
        raise ValueError(
            f"subfolder: {subfolder!r} must be a relative path inside the output folder"
        )
    return "" if sub == "." else sub


def _prepare(image: Image, fmt: str) -> Any:
    """A Pillow image in a mode ``fmt`` can store."""
    if fmt in ("jpeg", "bmp") and has_alpha(image):
        # JPEG has no alpha and BMP readers (Pillow's included) ignore it: composite onto white.
        rgb = image[:, :, :3].astype(np.float32)
        a = image[:, :, 3:4].astype(np.float32) / 255.0
        image = cast(Image, np.rint(rgb * a + 255.0 * (1.0 - a)).astype(np.uint8))
    elif fmt == "webp" and image.ndim == 2:
        image = cast(Image, np.repeat(image[:, :, None], 3, axis=2))
    return to_pil(image)


def _target(folder: str, name: str, format: str = "png", template: str = "{name}",
            subfolder: str = "", index: int = 0, **_: Any) -> str:
    """The path ``image.save`` writes for these inputs (its ``target`` for run checks)."""
    if format not in ("auto", *_FORMATS):
        raise ValueError(
            f"format: {format!r} is not one of 'auto', {', '.join(map(repr, _FORMATS))}"
        )
    if not isinstance(folder, (str, os.PathLike)) or not os.fspath(folder):
        raise ValueError(f"folder: expected a folder path, got {folder!r}")
    file_name, _fmt = _file_name(name, template, format, index)
    sub = _check_subfolder(subfolder)
    directory = os.path.join(os.path.expanduser(os.fspath(folder)), *([sub] if sub else []))
    return os.path.join(directory, file_name)


@node("image.save", output="path", writes_files=True, target=_target, check=_check_save)
def save(
    image: Image,
    folder: str,
    name: str,
    format: SaveFormat = "png",
    quality: Annotated[int, Range(1, 100)] = 90,
    template: str = "{name}",
    subfolder: str = "",
    overwrite: bool = False,
    ctx: Context | None = None,
) -> str:
    """Save an image atomically into folder/subfolder; outputs the written file's path.

    The file name is ``template`` with ``{name}`` (the ``name`` input, e.g. from
    ``image.load_folder``) and ``{index}`` (the item index, ``{index:04d}`` works) filled in, plus
    the format's extension. ``format="auto"`` keeps a known extension already in the name, else
    PNG. ``quality`` (1-100) applies to JPEG and WebP. JPEG and BMP drop alpha by
    compositing on white.
    The file appears complete or not at all (a hidden temporary file moved into place). An
    existing file is never replaced unless ``overwrite`` is set, except by a resumed run when
    chainlib wrote it into this folder and nobody changed it since; an input of the run is never
    replaced, and two items writing one file is an error naming both (see
    :mod:`chainlib.outputs`).
    """
    image = as_image(image)
    fmt: str = format
    if fmt not in ("auto", *_FORMATS):
        raise ValueError(
            f"format: {format!r} is not one of 'auto', {', '.join(map(repr, _FORMATS))}"
        )
    check_range("quality", quality, 1, 100)
    if not isinstance(folder, (str, os.PathLike)) or not os.fspath(folder):
        raise ValueError(f"folder: expected a folder path, got {folder!r}")
    index = ctx.item if ctx is not None and ctx.item is not None else 0
    file_name, fmt = _file_name(name, template, fmt, index)
    sub = _check_subfolder(subfolder)
    directory = os.path.join(os.path.expanduser(os.fspath(folder)), *([sub] if sub else []))
    target = os.path.join(directory, file_name)
    pil_format = _FORMATS[fmt][0]
    options: dict[str, Any] = {}
    if fmt == "jpeg":
        options = {"quality": int(quality), "optimize": True}
    elif fmt == "webp":
        options = {"quality": int(quality), "method": 4}
    elif fmt == "png":
        options = {"compress_level": 6}

    def write(fh: IO[bytes]) -> None:
        _prepare(image, fmt).save(fh, format=pil_format, **options)

    source = ctx.source if ctx is not None else None
    if source is not None:
        item = repr(source)
    elif ctx is not None and ctx.label is not None:
        item = repr(ctx.label)
    else:
        item = f"item {index}" if ctx is not None and ctx.item is not None else "this image"
    return write_output(
        target, write, folder=os.path.expanduser(os.fspath(folder)),
        session=ctx.outputs if ctx is not None else None, item=item, source=source,
        node=ctx.node if ctx is not None else "",
        overwrite=bool(overwrite) or (ctx is not None and ctx.overwrite),
        resuming=ctx is not None and ctx.resuming, record=ctx is not None,
    )
