"""The ``chainlib`` command line (also ``python -m chainlib``).

```
chainlib [-v | --log-level LEVEL] COMMAND ...
chainlib run CHAIN.json [--set NODE.INPUT=VALUE ...] [--workers N] [--resume] [--overwrite]
                        [--on-error skip|stop] [--import MODULE ...] [--cluster ADDRESS]
                        [--max-memory SIZE] [--max-image-mb MB] [--json]
chainlib validate CHAIN.json [--set NODE.INPUT=VALUE ...] [--import MODULE ...] [--svg FILE]
chainlib nodes [PATTERN] [--json] [--import MODULE ...]
chainlib demo [--out DIR] [--workers N] [--json]
chainlib run CHAIN.json --serve [HOST:]PORT [--allow-remote] ...
chainlib status URL [--json]          chainlib pause|resume|stop URL
```

``run`` shows a progress bar on stderr and prints a summary on stdout (on stderr with ``--json``,
where stdout carries one JSON object per state change). Ctrl-C asks the run to stop after the
items in flight (already written outputs stay complete; ``--resume`` finishes the rest); a second
Ctrl-C quits at once. ``-v`` logs state changes (``-vv``: everything) on stderr.

Exit codes: 0 every item done, 1 some items failed (or the run failed), 2 invalid chain or
arguments, an input listing nothing to run, or the output folder is in use by another run (one
line, no traceback: argument errors too, without argparse's usage block), 130 stopped by
the user. ``status`` / ``pause`` / ``resume`` / ``stop URL`` (a run served with ``--serve``): 0
answered / accepted, 1 rejected, 2 bad URL, 3 unreachable, refused or not a control server.
Names and messages printed to the terminal have their control characters escaped.

Modules: :mod:`.commands` (the commands), :mod:`.progress` (running with a progress bar, Ctrl-C,
the summary), :mod:`.overrides` (``--set``), :mod:`.common` (exit codes, user errors),
:mod:`.remote` (``--serve`` and the commands that talk to a served run).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..errors import ChainError
from ..run.args import MAX_WORKERS
from .commands import (
    cmd_demo,
    cmd_nodes,
    cmd_run,
    cmd_validate,
    default_workers,
    image_mb,
    memory_size,
    positive_int,
)
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, err, safe
from .overrides import apply_overrides, parse_override, parse_value
from .remote import add_remote_parsers, add_serve_arguments

LOG_LEVELS = ("debug", "info", "warning", "error")
JSON_HELP = ("write one JSON object per state change to stdout (the last one: the final status), "
             "for piping; the summary goes to stderr")

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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``PROG: error: MESSAGE (see PROG --help)``,
    control characters escaped, exit 2) instead of argparse's usage block and error. Its
    sub-command parsers are of this class too (``add_subparsers`` uses the parent's class)."""

    commands: dict[str, argparse.ArgumentParser]
    """The sub-command parsers by name (set by :func:`build_parser`)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {safe(message)} (see {self.prog} --help)\n")


def build_parser() -> _Parser:
    parser = _Parser(
        prog="chainlib",
        description="Run image-processing node chains (JSON chain files) with progress, "
        "graceful Ctrl-C and resumable batches.",
        epilog="Exit codes: 0 all done, 1 some items failed, 2 invalid chain or arguments, "
        "130 stopped by the user.",
    )
    parser.add_argument("--version", action="version", version=f"chainlib {__version__}")
    logs = parser.add_mutually_exclusive_group()
    logs.add_argument("-v", "--verbose", action="count", default=0,
                      help="log on stderr: -v state changes and connections, -vv everything")
    logs.add_argument("--log-level", choices=LOG_LEVELS, metavar="LEVEL",
                      help=f"log on stderr from LEVEL up ({', '.join(LOG_LEVELS)}; default "
                      "warning)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    imports = _Parser(add_help=False)
    imports.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import MODULE (a dotted name, or a path to a .py file) first, to register its "
        "custom nodes; repeatable",
    )
    chain_args = _Parser(add_help=False)
    chain_args.add_argument("chain", metavar="CHAIN.json", help="a chain file")
    chain_args.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
        help="override an input; VALUE is read as JSON when it is valid JSON (256, true, null, "
        "[1, 2], \"text\"), else as plain text; repeatable",
    )
    exec_args = _Parser(add_help=False)
    exec_args.add_argument(
        "--workers", "-w", type=positive_int, default=default_workers(), metavar="N",
        help=f"items processed in parallel, 1 to {MAX_WORKERS} (default: the CPU count, at most "
        f"4; here {default_workers()})",
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
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files, even ones chainlib did not write (the "
                   "run's inputs are never replaced)")
    p.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE",
                   help="memory for decoded images held at once across workers, e.g. 2G "
                   "(default: half the physical memory); with --cluster, per worker process, "
                   "at most half its memory limit")
    p.add_argument("--max-image-mb", type=image_mb, default=None, metavar="MB",
                   help="refuse images that decode to more than MB megabytes (default: "
                   "$CHAINLIB_MAX_IMAGE_MB or 1024)")
    p.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                   help="skip (default): record a failed item and go on; stop: end the run at "
                   "the first failure")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="run on a Dask cluster: a scheduler address (tcp://host:8786) or "
                   "local:N for a local cluster of N worker processes")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    add_serve_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", parents=[chain_args, imports], help="check a chain file",
                       description="Load and validate a chain file (with overrides) without "
                       "running it.")
    p.add_argument("--svg", metavar="FILE",
                   help="also draw the chain as a graph into FILE (SVG; with Graphviz's dot when "
                   "it is installed)")
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
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help="output folder (default: $CHAINLIB_DEMO_OUT or "
                   "~/.cache/chainlib/demo-out; never the current folder)")
    p.add_argument("--samples", metavar="DIR", default=None,
                   help="where to create the sample images (default: $CHAINLIB_SAMPLES or "
                   "~/.cache/chainlib/samples-v1)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_demo)
    add_remote_parsers(sub)
    parser.commands = dict(sub.choices)
    return parser


def parse(parser: _Parser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that arguments no parser knows are reported by the
    command's parser (``chainlib run: error: unrecognized arguments: ... (see chainlib run
    --help)``), not by the top-level one."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        where = parser.commands.get(args.command, parser)
        where.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def setup_logging(verbose: int, level: str | None) -> None:
    """Log records of chainlib (and, with -vv, of everything) to stderr."""
    name = level or {0: "warning", 1: "info"}.get(verbose, "debug")
    everything = verbose >= 2 or name == "debug"
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="chainlib: %(levelname)s %(name)s: %(message)s")
    if everything:
        root.setLevel(logging.DEBUG)
    else:
        # Libraries that set their own loggers' levels (distributed logs INFO) reach this
        # handler whatever the root's level: only chainlib's records pass below WARNING.
        for handler in root.handlers:
            if handler not in before:
                handler.addFilter(_chainlib_or_warning)
    logging.getLogger("chainlib").setLevel(name.upper())


def _chainlib_or_warning(record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.WARNING or record.name == "chainlib"
            or record.name.startswith("chainlib."))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parse(parser, argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    setup_logging(args.verbose, args.log_level)
    try:
        code: int = args.func(args)
        return code
    except (ChainError, UsageError) as exc:
        err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:  # before or after the run (during it, the handler is installed)
        print("\nchainlib: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `chainlib nodes | head`: silence the flush at exit
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
