"""`hub witness init|serve` and `hub monitor`: the commands another institution runs."""

import argparse
from pathlib import Path

from hub.config import Settings
from hub.errors import ConfigError
from hub.ledger.note import Signer

KEY_FILE = "witness.key"
STATE_FILE = "witness.db"


def key_path(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def load_witness_signer(settings: Settings) -> Signer:
    from hub.ledger.cosignature import parse_cosigner_signer_key

    path = key_path(settings)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"no witness key at {path}: run `hub witness init --name NAME`") from None
    try:
        return parse_cosigner_signer_key(text)
    except ValueError as exc:
        raise ConfigError(f"the witness key in {path} is malformed: {exc}") from None


async def cmd_witness_init(args: argparse.Namespace, settings: Settings) -> int:
    from hub.keys import write_secret
    from hub.ledger.cosignature import (
        format_cosigner_key,
        format_cosigner_signer_key,
        generate_cosigner_key,
    )

    path = key_path(settings)
    if path.exists():
        signer = load_witness_signer(settings)
        if signer.name != args.name:
            raise ConfigError(f"{path} already holds the key of witness {signer.name!r}")
    else:
        signer = generate_cosigner_key(args.name)
        write_secret(path, (format_cosigner_signer_key(signer) + "\n").encode())
    print(format_cosigner_key(signer.verifier))
    return 0


async def cmd_witness_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from hub.ledger.note import parse_verifier_key
    from hub.logging import log_config
    from hub.witness.server import Witness, create_witness_app
    from hub.witness.state import WitnessState

    logs = [parse_verifier_key(vkey.strip()) for vkey in args.log]
    signer = load_witness_signer(settings)
    state = WitnessState(settings.data_dir / STATE_FILE)
    try:
        app = create_witness_app(Witness(signer, logs, state))
        config = uvicorn.Config(
            app, host=args.host, port=args.port, log_config=log_config(), log_level="info"
        )
        await uvicorn.Server(config).serve()
    finally:
        state.close()
    return 0


async def cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    from hub.witness.monitor import run_monitor

    return await run_monitor(args)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    witness = sub.add_parser("witness", help="cosign another log's checkpoints")
    wsub = witness.add_subparsers(dest="witness", required=True)
    init = wsub.add_parser("init", help="create the witness key; print its verifier key")
    init.add_argument(
        "--name", required=True, help="the witness's key name, e.g. agency.example/w1"
    )
    init.set_defaults(handler=cmd_witness_init)
    serve = wsub.add_parser("serve", help="answer C2SP tlog-witness add-checkpoint")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--log", required=True, nargs="+", action="extend", help="verifier key of a log to follow"
    )
    serve.set_defaults(handler=cmd_witness_serve)

    monitor = sub.add_parser("monitor", help="follow a log; exit non-zero on a fork or rollback")
    monitor.add_argument("url", help="the hub's base URL (its /log/ endpoints)")
    monitor.add_argument("--key", required=True, help="the log's verifier key")
    monitor.add_argument("--policy", help="a C2SP tlog-policy file checkpoints must meet")
    monitor.add_argument("--state", help="file keeping the last checkpoint seen (evidence)")
    monitor.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    monitor.add_argument("--once", action="store_true", help="check once and exit")
    monitor.set_defaults(handler=cmd_monitor)
