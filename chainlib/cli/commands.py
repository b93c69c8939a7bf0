"""The commands: ``run``, ``validate``, ``nodes``, ``demo``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from ..api.registry import NodeSpec, all_specs
from ..chain import Chain
from ..chain.render import to_svg
from ..chain.validate import compile_chain, output_folders, resumable
from ..memory import parse_size, set_max_image_mb
from ..records import RecordError
from ..run.args import MAX_WORKERS
from .common import EXIT_OK, EXIT_USAGE, UsageError, err, safe, write_out
from .overrides import apply_overrides
from .progress import execute, summary
from .remote import serve_hook


def positive_int(text: str) -> int:
    """A ``--workers`` count: a whole number from 1 to :data:`MAX_WORKERS`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_WORKERS}, got {value}")
    return value


def memory_size(text: str) -> int:
    """A ``--max-memory`` size (``800M``, ``2G``) in bytes."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def image_mb(text: str) -> float:
    """A ``--max-image-mb`` limit: a positive number of MB."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of MB, got {text!r}")
    return value


def default_workers() -> int:
    """Worker threads used when ``--workers`` is not given: the CPU count, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def import_modules(names: Sequence[str]) -> list[ModuleType]:
    """Import the ``--import`` modules (dotted names, or paths to ``.py`` files) so that the node
    types they register are available. A path is loaded from that file alone; a dotted name is
    searched on ``sys.path`` and then in the current folder, which comes last (a ``tqdm.py``
    lying there never shadows the real package). Returns the modules loaded from a path."""
    by_path: list[ModuleType] = []
    if not names:
        return by_path
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path and not all(_is_path(n) for n in names):
        sys.path.append(cwd)
    for name in names:
        try:
            if _is_path(name):
                by_path.append(_import_path(name))
            else:
                importlib.import_module(name)
        except UsageError:
            raise
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                raise UsageError(f"--import {name}: no module named {exc.name!r} (searched the "
                                 f"current folder and sys.path)") from None
            raise UsageError(f"--import {name}: {_where(exc)}") from None
        except Exception as exc:
            raise UsageError(f"--import {name}: {_where(exc)}") from None
    return by_path


def _is_path(name: str) -> bool:
    return name.endswith(".py") or "/" in name or os.sep in name


def _import_path(name: str) -> ModuleType:
    path = Path(os.path.expanduser(name))
    if not path.is_file():
        raise UsageError(f"--import {name}: no such file")
    module_name = path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--import {name}: cannot import this file as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _where(exc: BaseException) -> str:
    """``Type: message (file:line)`` for an exception raised by user code."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" ({last.filename}:{last.lineno})"
    return text


def _load_chain(path: str, overrides: Sequence[str]) -> tuple[Chain, int | None]:
    """The chain, validated and checked against the file system (input folders, the paths it
    will write: :mod:`chainlib.run.preflight`), and how many items it lists (None: unknown).
    ``validate`` and ``run`` share it, so they say the same: an input that lists no item is an
    error (exit 2), as a run of nothing is a mistake (an empty folder, a wrong pattern)."""
    from ..run.preflight import preflight, recorded_outputs

    chain = Chain.load(path)
    apply_overrides(chain, overrides)
    plan = compile_chain(chain)
    try:
        count = preflight(plan, recorded_outputs(plan), require_items=True)
    except (RecordError, OSError) as exc:
        raise UsageError(f"cannot read the output folder's record: {exc}") from None
    return chain, count


def _output_folders(chain: Chain) -> list[str]:
    """Where the chain's file-writing nodes write (absolute, for the summary)."""
    plan = compile_chain(chain)
    folders: list[str] = []
    for folder in output_folders(plan.steps[nid] for nid in chain.nodes):
        absolute = os.path.abspath(os.path.expanduser(folder))
        if absolute not in folders:
            folders.append(absolute)
    return folders


def _pickle_by_value(modules: Sequence[ModuleType]) -> None:
    """A module loaded from a file is on no ``sys.path`` of a cluster's workers, which would
    fail to import it: its nodes travel in the payload by value instead, as a notebook's do."""
    if modules:
        import cloudpickle  # type: ignore[import-untyped]  # comes with distributed (--cluster)

        for module in modules:
            cloudpickle.register_pickle_by_value(module)


def _connect(address: str) -> tuple[Any, Callable[[], None]]:
    """A ``distributed.Client`` for ``address`` (``local:N`` starts a LocalCluster of N worker
    processes) and a function closing what was opened."""
    from ..run.cluster import connect, disconnect

    try:
        client = connect(address)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(f"--cluster {address}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"--cluster {address}: cannot connect ({type(exc).__name__}: {exc})") \
            from None
    return client, lambda: disconnect(client)


def cmd_run(args: argparse.Namespace) -> int:
    serve = serve_hook(args)
    by_path = import_modules(args.imports)
    chain, _ = _load_chain(args.chain, args.sets)
    close: Callable[[], None] | None = None
    client: Any = None
    if args.cluster:
        client, close = _connect(args.cluster)  # first: says so if distributed is missing
        _pickle_by_value(by_path)
    if args.max_image_mb is not None:
        set_max_image_mb(args.max_image_mb)
    try:
        st, _ = execute(chain, workers=args.workers, on_error=args.on_error, resume=args.resume,
                        cluster=client, progress=not args.no_progress,
                        label=Path(args.chain).stem, serve=serve,
                        max_memory=args.max_memory, overwrite=args.overwrite,
                        json_out=sys.stdout if args.json else None)
    finally:
        if close is not None:
            close()
    text, code = summary(st, _output_folders(chain), resumable=resumable(compile_chain(chain)),
                         resumed=args.resume)
    write_out(text + "\n", sys.stderr if args.json else sys.stdout)
    return code


def cmd_validate(args: argparse.Namespace) -> int:
    import_modules(args.imports)
    chain, count = _load_chain(args.chain, args.sets)
    plan = compile_chain(chain)
    order = [*plan.pre, *filter(None, [plan.iterator]), *plan.item, *plan.collectors, *plan.post]
    print(f"{safe(args.chain)}: valid chain {safe(repr(chain.name))} with {len(chain.nodes)} "
          "nodes")
    for step in order:
        print(f"  {step.id} ({safe(step.spec.id)}, {step.phase})")
    folders = _output_folders(chain)
    if folders:
        print("writes into: " + ", ".join(map(safe, folders)))
    if count is not None:
        print(f"items: {count}")
    if args.svg:
        svg = Path(os.path.expanduser(args.svg))
        try:
            svg.write_text(to_svg(chain), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--svg {args.svg}: cannot write it ({exc.strerror or exc})") \
                from None
        engine = "Graphviz dot" if shutil.which("dot") else "the built-in layout"
        print(f"drawing ({engine}): {svg.resolve()}")
    return EXIT_OK


def _format_spec(spec: NodeSpec) -> list[str]:
    d = spec.describe()
    missing = f" [not installed: {spec.install_hint}]" if spec.missing() else ""
    lines = [f"{spec.id} ({spec.kind}){missing}" + (f": {spec.doc}" if spec.doc else "")]
    for i in d["inputs"]:
        default = f" = {json.dumps(i['default'])}" if "default" in i else " (required)"
        collected = " (one per item, collected)" if spec.collect == i["name"] else ""
        lines.append(f"    in   {i['name']}: {i['type']}{default}{collected}")
    for o in d["outputs"]:
        lines.append(f"    out  {o['name']}: {o['type']}")
    return lines


def cmd_nodes(args: argparse.Namespace) -> int:
    import_modules(args.imports)
    specs = all_specs()
    if args.pattern:
        import fnmatch

        pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"
        specs = [s for s in specs if fnmatch.fnmatchcase(s.id, pattern)]
        if not specs:
            err(f"no node type matches {args.pattern!r}")
            return EXIT_USAGE
    if args.json:
        print(json.dumps([s.describe() for s in specs], indent=2))
    else:
        for spec in specs:
            print("\n".join(_format_spec(spec)))
    return EXIT_OK


def _refuse_foreign_files(samples_dir: Path, out: Path, sheet: str) -> None:
    """The demo replaces its own outputs (its saves have ``overwrite=True``, to run again into the
    same folder), so it must not start where that would replace a file chainlib did not write:
    ``--out ~/Pictures`` would lose a ``gradient.png`` of the user's."""
    from ..nodes.image.io import list_images
    from ..outputs import OutputFolder

    if not out.is_dir():
        return
    targets = [out / PurePosixPath(rel).with_suffix(".png")
               for rel in list_images(str(samples_dir), "*", True)]
    existing = [t for t in (*targets, out / sheet) if os.path.lexists(t)]
    if not existing:
        return
    try:
        folder = OutputFolder(out, locked=False).open()
    except (OSError, RecordError) as exc:
        raise UsageError(f"--out {out}: cannot read the output folder's record: {exc}") from None
    foreign = [t for t in existing if not folder.is_ours(str(t))]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise UsageError(f"--out {out}: {str(foreign[0])!r}{more} exists and was not written by "
                         "chainlib, and the demo would replace it; choose another --out (a new "
                         "or empty folder)")


def cmd_demo(args: argparse.Namespace) -> int:
    from .. import samples
    from ..demo import CONTACT_SHEET, build_demo_chain, default_out

    out = Path(os.path.expanduser(args.out)) if args.out else default_out()
    try:
        samples_dir = samples.folder(args.samples)
    except OSError as exc:
        raise UsageError(f"cannot create the sample images: {exc}") from None
    say = sys.stderr if args.json else sys.stdout
    print(f"demo: {len(samples.names())} sample images from {samples_dir}", file=say)
    print(f"demo: writing into {out.resolve()}", file=say, flush=True)
    chain = build_demo_chain(samples_dir, out)
    chain.validate()
    _refuse_foreign_files(samples_dir, out, CONTACT_SHEET)
    st, _ = execute(chain, workers=args.workers, on_error="skip",
                    progress=not args.no_progress, label="demo",
                    json_out=sys.stdout if args.json else None)
    # not resumable: the demo replaces its outputs, and `chainlib demo` has no --resume
    text, code = summary(st, _output_folders(chain), resumable=False)
    sheet = out / CONTACT_SHEET
    if st.state == "completed" and sheet.exists():
        text += f"\ncontact sheet: {sheet.resolve()}"
    write_out(text + "\n", say)
    return code
