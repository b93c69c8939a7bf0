"""The ``chainlib`` command line (also ``python -m chainlib``).

```
chainlib run CHAIN.json [--set NODE.INPUT=VALUE ...] [--workers N] [--resume]
                        [--on-error skip|stop] [--import MODULE ...] [--cluster ADDRESS]
chainlib validate CHAIN.json [--set NODE.INPUT=VALUE ...] [--import MODULE ...]
chainlib nodes [PATTERN] [--json] [--import MODULE ...]
chainlib demo [--out DIR] [--workers N]
```

``run`` shows a progress bar on stderr and prints a summary on stdout. Ctrl-C asks the run to stop
after the items in flight (already written outputs stay complete; ``--resume`` finishes the rest);
a second Ctrl-C quits at once.

Exit codes: 0 every item done, 1 some items failed (or the run failed), 2 invalid chain or
arguments, 130 stopped by the user.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__
from .api.registry import NodeSpec, all_specs
from .chain import Chain
from .errors import ChainError
from .run import Runner, Status

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "apply_overrides",
    "main",
    "parse_override",
    "parse_value",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

STOPPING_MESSAGE = "stopping after the current items… (Ctrl-C again to quit now)"
MAX_LISTED_FAILURES = 20


class UsageError(Exception):
    """A user error (bad argument, missing module, ...): one line on stderr, exit code 2."""


# -- --set overrides ---------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON constant")


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when ``text`` is valid JSON (numbers, ``true``/``false``, ``null``,
    lists, objects, ``"quoted strings"``), otherwise ``text`` itself as a plain string.

    ``NaN`` and ``Infinity`` stay strings (a chain file cannot store them).
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``NODE.INPUT=VALUE`` into ``(node, input, value)`` (value as :func:`parse_value`).

    Raises :class:`ChainError` for anything else.
    """
    target, eq, raw = text.partition("=")
    node, dot, name = target.partition(".")
    if not eq or not dot or not node or not name:
        raise ChainError(f"--set {text!r}: expected NODE.INPUT=VALUE (for example "
                         f"resize.width=256 or save.folder=out)")
    return node, name, parse_value(raw)


def apply_overrides(chain: Chain, overrides: Iterable[str]) -> Chain:
    """Apply ``--set NODE.INPUT=VALUE`` overrides to ``chain`` (in place; returns it).

    An unknown node, or an input the node type does not have, raises :class:`ChainError` naming
    it (and listing what exists).
    """
    for text in overrides:
        node, name, value = parse_override(text)
        inst = chain.nodes.get(node)
        if inst is None:
            known = ", ".join(chain.nodes) or "none"
            raise _set_error(f"--set {text}: no node {node!r} in the chain (nodes: {known})",
                             node, None)
        spec = inst.spec
        if spec is not None and name not in spec.inputs:
            known = ", ".join(spec.inputs) or "none"
            raise _set_error(f"--set {text}: node {node!r} ({spec.id}) has no input {name!r} "
                             f"(inputs: {known})", node, name)
        chain.set(node, name, value)
    return chain


def _set_error(message: str, node: str, input: str | None) -> ChainError:
    # The message already names the node (and input): keep them as attributes, not as a prefix.
    err = ChainError(message)
    err.node, err.input = node, input
    return err


# -- helpers -----------------------------------------------------------------------------------


def _err(message: str) -> None:
    print(f"chainlib: error: {message}", file=sys.stderr, flush=True)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def default_workers() -> int:
    """Worker threads used when ``--workers`` is not given: the CPU count, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def import_modules(names: Sequence[str]) -> None:
    """Import the ``--import`` modules (dotted names, or paths to ``.py`` files) so that the node
    types they register are available. The current folder is searched first."""
    if not names:
        return
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    for name in names:
        try:
            if name.endswith(".py") or "/" in name or os.sep in name:
                _import_path(name)
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


def _import_path(name: str) -> None:
    path = Path(name).expanduser()
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


def _where(exc: BaseException) -> str:
    """``Type: message (file:line)`` for an exception raised by user code."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" ({last.filename}:{last.lineno})"
    return text


def _load_chain(path: str, overrides: Sequence[str]) -> Chain:
    chain = Chain.load(path)
    apply_overrides(chain, overrides)
    chain.validate()
    return chain


def _output_folders(chain: Chain) -> list[str]:
    """The constant ``folder`` inputs of the nodes that write files (for the summary)."""
    folders: list[str] = []
    for inst in chain.nodes.values():
        spec = inst.spec
        folder = inst.inputs.get("folder")
        if spec is not None and spec.writes_files and isinstance(folder, str):
            absolute = os.path.abspath(os.path.expanduser(folder))
            if absolute not in folders:
                folders.append(absolute)
    return folders


# -- running with a progress bar, Ctrl-C and a summary -----------------------------------------


class _Interrupts:
    """SIGINT in the main thread: the first asks for a graceful stop (done by the polling loop, so
    the handler never takes the runner's lock), the second quits at once."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count >= 2:
            # Raw write: the main thread may be inside a buffered write to stderr right now.
            os.write(2, b"\nchainlib: quitting now (stopped by the user)\n")
            os._exit(EXIT_INTERRUPTED)


def _execute(
    chain: Chain,
    *,
    workers: int,
    on_error: str,
    resume: bool = False,
    cluster: Any = None,
    progress: bool = True,
    label: str = "items",
) -> tuple[Status, bool]:
    """Run ``chain`` with a progress bar (stderr) until it ends; returns its final status and
    whether the user interrupted it."""
    from tqdm import tqdm

    kwargs: dict[str, Any] = {"workers": workers, "on_error": on_error, "resume": resume}
    if cluster is not None:
        kwargs["cluster"] = cluster
    try:
        runner = Runner(chain, **kwargs)
    except (ValueError, ChainError) as exc:
        raise UsageError(str(exc)) from None

    with _Interrupts() as interrupts:
        bar = tqdm(total=None, unit="item", desc=label, file=sys.stderr, disable=not progress,
                   dynamic_ncols=True, smoothing=0.1, mininterval=0.2)
        stop_sent = False
        final: Status | None = None
        try:
            ack = runner.start()
            if not ack.accepted:  # cannot happen for a fresh runner; be truthful anyway
                raise UsageError(f"the run did not start: {ack.reason}")
            while final is None:
                if interrupts.count and not stop_sent:
                    stop_sent = True
                    runner.stop()
                    tqdm.write(STOPPING_MESSAGE, file=sys.stderr)
                    sys.stderr.flush()
                with contextlib.suppress(TimeoutError):
                    final = runner.wait(timeout=0.1)
                _update_bar(bar, final or runner.status())
        finally:
            bar.close()
        return final, interrupts.count > 0


def _update_bar(bar: Any, st: Status) -> None:
    if st.total is not None and bar.total != st.total:
        bar.total = st.total
        bar.refresh()
    finished = st.done + st.failed
    if finished > bar.n:
        bar.update(finished - bar.n)
    postfix = []
    if st.skipped:
        postfix.append(f"skipped={st.skipped}")
    if st.failed:
        postfix.append(f"failed={st.failed}")
    if st.state in ("stopping", "pausing", "paused"):
        postfix.append(st.state)
    elif st.current and st.total is not None and finished >= st.total:
        postfix.append("finishing: " + ", ".join(st.current))
    text = " ".join(postfix)
    if text != getattr(bar, "_chainlib_postfix", ""):
        bar._chainlib_postfix = text
        bar.set_postfix_str(text, refresh=False)


def _summary(st: Status, folders: Sequence[str], *, resumable: bool) -> tuple[str, int]:
    """The summary text (for stdout) and the exit code for a finished run."""
    total = "?" if st.total is None else str(st.total)
    parts = [f"{st.done} done"]
    if st.skipped:
        parts.append(f"{st.skipped} of them already complete (skipped)")
    parts.append(f"{st.failed} failed")
    remaining = st.remaining
    if st.state != "completed" and remaining:
        parts.append(f"{remaining} not run")
    rate = f", {st.rate:.1f} items/s" if st.rate else ""
    headline = {
        "completed": "completed" if not st.failed else "completed with failures",
        "stopped": "stopped by the user",
        "failed": "run failed",
    }.get(st.state, st.state)
    lines = [f"{headline}: {', '.join(parts)} (of {total} items) in {st.elapsed:.1f} s{rate}"]

    item_failures = [f for f in st.failures if f.item is not None]
    if item_failures:
        lines.append("failed items:")
        for f in item_failures[:MAX_LISTED_FAILURES]:
            name = f.label if f.label is not None else f"item {f.item}"
            lines.append(f"  {name}: [{f.node}] {f.message}")
        if len(item_failures) > MAX_LISTED_FAILURES:
            lines.append(f"  ... and {len(item_failures) - MAX_LISTED_FAILURES} more")
    for f in st.failures:
        if f.item is None:
            lines.append(f"error in node {f.node!r}: {f.message}")
    if st.state == "failed" and st.error is not None and not st.failures:
        lines.append(f"error in node {st.error.node!r}: {st.error.message}")

    if len(folders) == 1:
        lines.append(f"output folder: {folders[0]}")
    elif folders:
        lines.append("output folders: " + ", ".join(folders))
    if any("already exists" in f.message for f in item_failures):
        lines.append("hint: outputs exist from an earlier run; use --resume to skip finished "
                     "items, or --set SAVE_NODE.overwrite=true to replace them")
    if st.state == "stopped" and resumable and remaining:
        lines.append("run the same command with --resume to finish the remaining items")

    if st.state == "stopped":
        code = EXIT_INTERRUPTED
    elif st.state == "completed" and not st.failed:
        code = EXIT_OK
    else:
        code = EXIT_FAILED
    return "\n".join(lines), code


# -- --cluster ---------------------------------------------------------------------------------


def _connect(address: str) -> tuple[Any, Callable[[], None]]:
    """A ``distributed.Client`` for ``address`` (``local:N`` starts a LocalCluster of N worker
    processes) and a function closing what was opened."""
    from .run.cluster import connect, disconnect

    try:
        client = connect(address)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(f"--cluster {address}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"--cluster {address}: cannot connect ({type(exc).__name__}: {exc})") \
            from None
    return client, lambda: disconnect(client)


# -- commands ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import_modules(args.imports)
    chain = _load_chain(args.chain, args.sets)
    close: Callable[[], None] | None = None
    client: Any = None
    if args.cluster:
        client, close = _connect(args.cluster)
    try:
        st, _ = _execute(chain, workers=args.workers, on_error=args.on_error, resume=args.resume,
                         cluster=client, progress=not args.no_progress,
                         label=Path(args.chain).stem)
    finally:
        if close is not None:
            close()
    text, code = _summary(st, _output_folders(chain), resumable=True)
    print(text, flush=True)
    return code


def cmd_validate(args: argparse.Namespace) -> int:
    import_modules(args.imports)
    chain = _load_chain(args.chain, args.sets)
    from .chain.validate import compile_chain

    plan = compile_chain(chain)
    order = [*plan.pre, *filter(None, [plan.iterator]), *plan.item, *plan.collectors, *plan.post]
    print(f"{args.chain}: valid chain {chain.name!r} with {len(chain.nodes)} nodes")
    for step in order:
        print(f"  {step.id} ({step.spec.id}, {step.phase})")
    folders = _output_folders(chain)
    if folders:
        print("writes into: " + ", ".join(folders))
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
            _err(f"no node type matches {args.pattern!r}")
            return EXIT_USAGE
    if args.json:
        print(json.dumps([s.describe() for s in specs], indent=2))
    else:
        for spec in specs:
            print("\n".join(_format_spec(spec)))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from . import samples
    from .demo import CONTACT_SHEET, build_demo_chain

    out = Path(args.out).expanduser()
    try:
        samples_dir = samples.folder(args.samples)
    except OSError as exc:
        raise UsageError(f"cannot create the sample images: {exc}") from None
    print(f"demo: {len(samples.names())} sample images from {samples_dir}", flush=True)
    chain = build_demo_chain(samples_dir, out)
    chain.validate()
    st, _ = _execute(chain, workers=args.workers, on_error="skip",
                     progress=not args.no_progress, label="demo")
    text, code = _summary(st, _output_folders(chain), resumable=False)
    print(text)
    sheet = out / CONTACT_SHEET
    if st.state == "completed" and sheet.exists():
        print(f"contact sheet: {sheet.resolve()}")
    return code


# -- the parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainlib",
        description="Run image-processing node chains (JSON chain files) with progress, "
        "graceful Ctrl-C and resumable batches.",
        epilog="Exit codes: 0 all done, 1 some items failed, 2 invalid chain or arguments, "
        "130 stopped by the user.",
    )
    parser.add_argument("--version", action="version", version=f"chainlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    imports = argparse.ArgumentParser(add_help=False)
    imports.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import MODULE (a dotted name, or a path to a .py file) first, to register its "
        "custom nodes; repeatable",
    )
    chain_args = argparse.ArgumentParser(add_help=False)
    chain_args.add_argument("chain", metavar="CHAIN.json", help="a chain file")
    chain_args.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
        help="override an input; VALUE is read as JSON when it is valid JSON (256, true, null, "
        "[1, 2], \"text\"), else as plain text; repeatable",
    )
    exec_args = argparse.ArgumentParser(add_help=False)
    exec_args.add_argument(
        "--workers", "-w", type=_positive_int, default=default_workers(), metavar="N",
        help="items processed in parallel (default: the CPU count, at most 4; here "
        f"{default_workers()})",
    )
    exec_args.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "run", parents=[chain_args, exec_args, imports], help="run a chain file",
        description="Run a chain file. Progress goes to stderr, the summary to stdout. Ctrl-C "
        "stops after the items in flight (a second Ctrl-C quits at once).",
    )
    p.add_argument("--resume", action="store_true",
                   help="skip items an earlier run of the same chain already completed (kept in "
                   "a manifest in the output folder)")
    p.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                   help="skip (default): record a failed item and go on; stop: end the run at "
                   "the first failure")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="run on a Dask cluster: a scheduler address (tcp://host:8786) or "
                   "local:N for a local cluster of N worker processes")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", parents=[chain_args, imports], help="check a chain file",
                       description="Load and validate a chain file (with overrides) without "
                       "running it.")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("nodes", parents=[imports], help="list the node types",
                       description="List every node type with its inputs (types, defaults) and "
                       "outputs.")
    p.add_argument("pattern", nargs="?", metavar="PATTERN",
                   help="only node ids matching this glob (or containing this text)")
    p.add_argument("--json", action="store_true", help="print JSON (NodeSpec.describe())")
    p.set_defaults(func=cmd_nodes)

    p = sub.add_parser(
        "demo", parents=[exec_args], help="run the bundled demo chain on sample images",
        description="Resize the bundled sample images to 256 px, caption them with their file "
        "names, save them and a contact sheet (contact_sheet.png) into the output folder.",
    )
    p.add_argument("--out", "-o", default=f"./{_demo_out()}", metavar="DIR",
                   help="output folder (default: %(default)s)")
    p.add_argument("--samples", metavar="DIR", default=None,
                   help="where to create the sample images (default: $CHAINLIB_SAMPLES or "
                   "~/.cache/chainlib/samples-v1)")
    p.set_defaults(func=cmd_demo)
    return parser


def _demo_out() -> str:
    from .demo import DEFAULT_OUT

    return DEFAULT_OUT


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.func(args)
        return code
    except (ChainError, UsageError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:  # before or after the run (during it, the handler is installed)
        print("\nchainlib: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `chainlib nodes | head`: silence the flush at exit
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
