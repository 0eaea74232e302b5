"""``foveate``: the command line. Subcommands live in ``foveate.tools.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from foveate.system import __version__
from foveate.system.errors import FoveateError

LOG_LEVELS = ("debug", "info", "warning", "error")


def _command_modules():
    from foveate.tools import commands

    mods = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return sorted(mods, key=lambda m: m.NAME)


def _requested_command(argv: list[str] | None, names: set[str]) -> str | None:
    """The subcommand named on the command line, if any (first token that is a command name)."""
    for tok in sys.argv[1:] if argv is None else argv:
        if tok in names:
            return tok
    return None


def build_parser(argv: list[str] | None = None, all_commands: bool = False) -> argparse.ArgumentParser:
    """The CLI parser. Only the requested subcommand's options are built (some import torch),
    unless ``all_commands`` is set."""
    parser = argparse.ArgumentParser(
        prog="foveate",
        description="Real-time edge vision: wide-area cameras, event cameras and a galvo-steered search camera. "
        "Without --config, commands use the embedded simulated rig.",
    )
    parser.add_argument("--version", action="version", version=f"foveate {__version__}")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="warning", help="logging threshold (default: warning)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mods = _command_modules()
    wanted = _requested_command(argv, {m.NAME for m in mods})
    for mod in mods:
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        p.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if all_commands or mod.NAME == wanted:
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    from foveate.system.safety import terminate_on_sigterm

    try:
        with terminate_on_sigterm():  # SIGTERM unwinds like Ctrl-C: rigs close, lasers off, galvos parked
            return int(args._run(args) or 0)
    except FoveateError as exc:
        print(f"foveate: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user named: missing folder, no permission, disk full
        logging.getLogger("foveate").debug("OSError in %s", args.command, exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"foveate: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        from foveate.system.safety import Terminated

        if isinstance(exc, Terminated):
            print("foveate: terminated", file=sys.stderr)
            return 143
        print("foveate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
