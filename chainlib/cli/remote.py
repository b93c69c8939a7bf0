"""The command line's control-server parts: ``run --serve`` and ``status|pause|resume|stop URL``.

The server and client code lives in :mod:`chainlib.serve` (the ``serve`` extra); it is imported
only when one of these is used, so the other commands work without the extra.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from typing import Any

from ..run import Runner
from .common import UsageError

REMOTE_COMMANDS = ("pause", "resume", "stop")
REFUSE_START = ("this run belongs to a `chainlib run` command, which starts it once and exits when "
                "it ends: run the command again to start it again")
"""Why a served CLI run rejects ``start``: one accepted after the run ended started a second run
that the exiting process then abandoned half done."""


def _serve_module() -> Any:
    try:
        import chainlib.serve.terminal as terminal
    except ImportError as exc:
        raise UsageError(f"this needs the serve extra: pip install 'chainlib[serve]' ({exc})") \
            from None
    return terminal


def serve_hook(args: argparse.Namespace) -> Callable[[Runner], Callable[[], None]] | None:
    """For ``run --serve [HOST:]PORT [--allow-remote]``: what starts the server beside the run
    (checked now, before the chain runs: a bad address is a usage error)."""
    if args.serve is None:
        if args.allow_remote:
            raise UsageError("--allow-remote only makes sense with --serve")
        return None
    terminal = _serve_module()
    try:
        host, port = terminal.parse_address(args.serve)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def start(runner: Runner) -> Callable[[], None]:
        try:
            with warnings.catch_warnings():  # the announcement says it, once, in our words
                warnings.simplefilter("ignore", RuntimeWarning)
                server = runner.serve(host, port, allow_remote=args.allow_remote,
                                      announce=sys.stderr, refuse_start=REFUSE_START)
        except ValueError as exc:
            raise UsageError(str(exc).replace("allow_remote=True (CLI: --allow-remote)",
                                              "--allow-remote")) from None
        except OSError as exc:
            raise UsageError(f"--serve {args.serve}: {exc}") from None
        def close() -> None:  # the run has ended: every client is told so, then the server goes
            server.close(reason="its chainlib run command has ended")

        return close

    return start


def cmd_status(args: argparse.Namespace) -> int:
    code: int = _serve_module().remote_status(args.url, as_json=args.json, out=sys.stdout,
                                              err=sys.stderr)
    return code


def cmd_remote(args: argparse.Namespace) -> int:
    code: int = _serve_module().remote_command(args.url, args.command, out=sys.stdout,
                                               err=sys.stderr)
    return code


def add_remote_parsers(sub: Any) -> None:
    """``status URL`` and ``pause|resume|stop URL``."""
    url_help = "the URL a served run printed (http://HOST:PORT/?token=...)"
    p = sub.add_parser(
        "status", help="show a served run's status (see run --serve)",
        description="Print the status of a run served with `chainlib run --serve` (or "
        "Runner.serve()). Exit codes: 0 answered, 2 bad URL, 3 unreachable, token refused or "
        "not a chainlib control server.")
    p.add_argument("url", metavar="URL", help=url_help)
    p.add_argument("--json", action="store_true", help="print the whole snapshot as JSON")
    p.set_defaults(func=cmd_status)
    for name in REMOTE_COMMANDS:
        p = sub.add_parser(
            name, help=f"{name} a served run",
            description=f"Ask a served run to {name}. Exit codes: 0 accepted, 1 rejected (the "
            "reason is printed), 2 bad URL, 3 unreachable, token refused or not a chainlib control "
            "server.")
        p.add_argument("url", metavar="URL", help=url_help)
        p.set_defaults(func=cmd_remote)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--serve", metavar="[HOST:]PORT",
                   help="serve the run over HTTP for the control page, `chainlib status|pause|"
                   "resume|stop URL` and ControlPanel.attach(URL); the URL with its token is "
                   "printed on stderr (port 0: any free port; host: 127.0.0.1)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow --serve on an address other than loopback (anyone who can reach "
                   "it and has the token controls the run, over plain HTTP)")
