"""The `csrm` command line.

    csrm serve [--host 127.0.0.1] [--port 8000] [--model PATH]   run the HTTP service
    csrm keys create --role admin|score --name NAME              create an API key (printed once)
    csrm keys list                                               list key names and roles (never the keys)
    csrm policy list|show|publish|promote|rollback|...           policies on a running server (service.policy_cli)
    csrm train ...                                               models.cli.train_main, arguments passed through
    csrm eval ...                                                models.cli.eval_main, arguments passed through
    csrm calibrate ...                                           models.cli.calibrate_main, arguments passed through

Each command is one `_add_<command>(subparsers)` function that registers its parser and sets `handler`;
`COMMANDS` lists them, so a new command group (e.g. `csrm policy`) is one more function in that tuple.
Settings are built once here, from the environment plus the flags, and passed to `create_app`.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from service.policy_cli import add_policy_commands

__all__ = ["COMMANDS", "PASSTHROUGH", "build_parser", "is_loopback", "main"]

Subparsers = Any  # argparse._SubParsersAction, which argparse does not export

#: Commands whose arguments go unparsed to another package's entry point `fn(argv) -> int | None`:
#: name -> (module, function) candidates, the first that exists wins.
PASSTHROUGH: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (("models.cli", "train_main"), ("models.training", "train_main")),
    "eval": (("models.cli", "eval_main"), ("models.evaluation", "eval_main")),
    "calibrate": (("models.cli", "calibrate_main"),),
}


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1); False for anything else, 0.0.0.0 included."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- serve -----------------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from service.app import create_app
    from service.auth import ApiKeyStore
    from service.settings import Settings

    overrides = {name: getattr(args, name) for name in ("host", "port", "model") if getattr(args, name) is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"csrm serve: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    if not is_loopback(settings.host) and not ApiKeyStore(settings.auth.keys_file).has_keys():
        print(
            f"csrm serve: refusing to listen on {settings.host} with no API key configured: anyone who can reach "
            f"this address could use the service.\n"
            f"Create a key first:  csrm keys create --role score --name <NAME>\n"
            f"(keys file: {settings.auth.keys_file}, set by CSRM_KEYS_FILE), or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    if settings.model is None:
        from models.checkpoint import default_checkpoint_path

        if not default_checkpoint_path().is_dir():
            print(
                f"csrm serve: the bundled default model ({default_checkpoint_path()}) is not in this installation; "
                f"pass a checkpoint: csrm serve --model PATH (or CSRM_MODEL=PATH; `make serve MODEL=PATH`).",
                file=sys.stderr,
            )
            return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


def _add_serve(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP scoring service",
        description="Run the service. Every setting is also a CSRM_* environment variable (see README); "
        "flags win over the environment.",
    )
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1, CSRM_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port to bind (default 8000, CSRM_PORT)")
    parser.add_argument(
        "--model", type=Path, default=None, help="CSRM checkpoint directory (default: bundled model, CSRM_MODEL)"
    )
    parser.set_defaults(handler=_serve)


# -- keys ------------------------------------------------------------------------------------------------------


def _keys_file(args: argparse.Namespace) -> Path:
    if args.keys_file is not None:
        return Path(args.keys_file)
    from service.settings import Settings

    return Settings().auth.keys_file


def _keys_create(args: argparse.Namespace) -> int:
    from service.auth import ApiKeyStore

    path = _keys_file(args)
    try:
        key = ApiKeyStore(path).create(role=args.role, name=args.name)
    except ValueError as exc:
        print(f"csrm keys create: {exc}", file=sys.stderr)
        return 2
    print(key)
    print(
        f"created {args.role} key {args.name!r} in {path}; it is shown only now, store it safely.",
        file=sys.stderr,
    )
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from service.auth import ApiKeyStore

    for record in ApiKeyStore(_keys_file(args)).records():
        print(f"{record.name}\t{record.role}\t{record.created_at}")
    return 0


def _add_keys(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("keys", help="manage API keys", description="Manage API keys (stored hashed).")
    parser.add_argument(
        "--keys-file", default=None, help="keys file (default: CSRM_KEYS_FILE, else var/keys.json)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=("admin", "score"), help="what the key may do")
    create.add_argument("--name", required=True, help="who holds the key (recorded in audit entries)")
    create.set_defaults(handler=_keys_create)
    listing = actions.add_parser("list", help="list key names and roles")
    listing.set_defaults(handler=_keys_list)


# -- train / eval (pass-through) -------------------------------------------------------------------------------


def _run_passthrough(command: str, argv: Sequence[str]) -> int:
    candidates = PASSTHROUGH[command]
    for module_name, function in candidates:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        entry: Callable[[list[str]], int | None] | None = getattr(module, function, None)
        if callable(entry):
            return int(entry(list(argv)) or 0)
    names = ", ".join(f"{m}.{f}" for m, f in candidates)
    print(f"csrm {command}: no entry point in this installation (looked for {names})", file=sys.stderr)
    return 2


def _add_passthrough(subparsers: Subparsers) -> None:
    for command, candidates in PASSTHROUGH.items():
        module_name, function = candidates[0]
        subparsers.add_parser(
            command, help=f"{module_name}.{function} (arguments passed through; `csrm {command} --help`)",
            add_help=False,
        )


#: Registration functions of the top-level commands, in help order.
COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    _add_serve, _add_keys, add_policy_commands, _add_passthrough
)


def build_parser() -> argparse.ArgumentParser:
    """The `csrm` argument parser with every command in `COMMANDS`."""
    parser = argparse.ArgumentParser(prog="csrm", description="Configurable Safety Reward Model service.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `csrm` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in PASSTHROUGH:
        return _run_passthrough(args_list[0], args_list[1:])
    args = build_parser().parse_args(args_list)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
