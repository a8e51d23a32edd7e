"""The `hub` command. Every command exits 0 on success, non-zero with a one-line reason."""

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from hub.config import Settings
from hub.errors import HubError
from hub.runner import run

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty() or done == total:
        print(
            f"\rverified {done:,}/{total:,} leaves",
            end="" if done < total else "\n",
            file=sys.stderr,
            flush=True,
        )


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from hub.store.db import migrate

    await migrate(settings.database_url)
    print("database is up to date")
    return 0


async def cmd_keys_init(args: argparse.Namespace, settings: Settings) -> int:
    from hub.auth.tokens import load_or_create_jwt_key
    from hub.keys import create_log_key, load_log_signer
    from hub.ledger.note import format_verifier_key

    created = create_log_key(settings.log_key_path, settings.origin)
    jwt_existed = settings.jwt_key_path.exists()
    load_or_create_jwt_key(settings.jwt_key_path)
    signer = load_log_signer(settings.log_key_path)
    print(f"log key {'created' if created else 'exists'}: {settings.log_key_path}")
    print(f"JWT key {'exists' if jwt_existed else 'created'}: {settings.jwt_key_path}")
    print(f"verifier key: {format_verifier_key(signer.verifier)}")
    return 0


def issue_token(settings: Settings, role: str, sub: str, inst: str | None, ttl: int) -> str:
    from hub.auth.tokens import TokenIssuer, TokenSettings, kid_for, load_or_create_jwt_key

    key = load_or_create_jwt_key(settings.jwt_key_path)
    token_settings = TokenSettings(issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    issuer = TokenIssuer(key, kid_for(key.public_key()), token_settings)
    return issuer.issue(role=role, sub=sub, inst=inst, ttl=ttl)


async def cmd_token_issue(args: argparse.Namespace, settings: Settings) -> int:
    print(issue_token(settings, args.role, args.sub, args.inst, args.ttl))
    return 0


async def _with_hub(settings: Settings, work: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    from dataclasses import replace

    from hub.services import Hub

    # A one-shot command has no serving loop to keep the integrator child's GIL away from:
    # starting one would cost more than the command's few leaves.
    hub = await Hub.start(replace(settings, sqlite_integrator="inline"))
    try:
        return await work(hub)
    finally:
        await hub.stop()


async def cmd_institution_add(args: argparse.Namespace, settings: Settings) -> int:
    from hub.institutions import add_institution, add_issuer_key, check_institution_id

    check_institution_id(args.id)  # before the hub starts: a typo needs no database

    async def work(hub: Any) -> int:
        await add_institution(
            hub.db,
            args.id,
            args.name,
            args.kind,
            signatures_required=args.signatures_required,
            bill_codes=args.bill_code or (),
        )
        if args.key:
            await add_issuer_key(hub.db, args.id, Path(args.key).read_bytes())
        print(f"institution {args.id} added")
        return 0

    return await _with_hub(settings, work)


async def cmd_grant_add(args: argparse.Namespace, settings: Settings) -> int:
    from hub.access.grants import add_grant

    async def work(hub: Any) -> int:
        issuers = (
            ["*"]
            if args.issuers.strip() == "*"
            else [i.strip() for i in args.issuers.split(",") if i.strip()]
        )
        grant_id = await add_grant(
            hub,
            agency=args.agency,
            type=args.type,
            issuers=issuers,
            view=args.view,
            purpose=args.purpose,
            until=args.until,
            claims=args.claims,
        )
        print(grant_id)
        return 0

    return await _with_hub(settings, work)


async def cmd_type_add(args: argparse.Namespace, settings: Settings) -> int:
    from hub.documents.registry import register_type

    try:
        definition = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{args.file} is not JSON: {exc}") from None

    async def work(hub: Any) -> int:
        registered, created = await register_type(hub.types, hub.sequencer, definition)
        what = "registered" if created else "already registered"
        print(
            f"type {registered.name} version {registered.version} {what}"
            f" (leaf {registered.leaf_index})"
        )
        return 0

    return await _with_hub(settings, work)


async def cmd_type_list(args: argparse.Namespace, settings: Settings) -> int:
    import base64

    async def work(hub: Any) -> int:
        for t in (await hub.types.refresh()).all():
            leaf = "shipped, not registered" if t.leaf_index is None else f"leaf {t.leaf_index}"
            digest = base64.b64encode(t.digest).decode()
            print(f"{t.name}\t{t.version}\t{','.join(t.issuer_kinds)}\t{digest}\t{leaf}")
        return 0

    return await _with_hub(settings, work)


async def cmd_ledger_verify(args: argparse.Namespace, settings: Settings) -> int:
    from hub.audit import verify_ledger
    from hub.keys import load_log_signer
    from hub.store.db import Database

    signer = load_log_signer(settings.log_key_path)
    db = Database(settings.database_url)
    await db.open()
    try:
        report = await verify_ledger(db, signer.verifier, settings.origin, _progress)
    finally:
        await db.close()
    print(
        f"ledger OK: {report.size} leaves, {report.checkpoints} checkpoints, "
        f"{report.documents} documents and {report.governance} access/grant/type/claim rows"
        " verified"
    )
    return 0


def _document_leaf(path: Path) -> bytes:
    import base64

    from hub.documents.canonical import body_digest, canonical_json, document_leaf_data

    doc = json.loads(path.read_text(encoding="utf-8"))
    try:
        salt = base64.b64decode(doc["salt"], validate=True)
        digest = body_digest(salt, canonical_json(doc["body"]))
        return document_leaf_data(
            issuer=doc["issuer"],
            type=doc["type"],
            id=doc["id"],
            version=int(doc["version"]),
            digest=digest,
            issued_at=doc["issuedAt"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a document export (issuer, type, id, version, issuedAt, body,"
            f" salt): {exc}"
        ) from None


async def cmd_proof_verify(args: argparse.Namespace, settings: Settings) -> int:
    from hub.ledger.note import parse_verifier_key
    from hub.ledger.receipt import verify_receipt

    verifier = parse_verifier_key(args.key.strip())
    text = Path(args.file).read_text(encoding="utf-8")
    leaf = _document_leaf(Path(args.document)) if args.document else None
    cp = verify_receipt(text, verifier, leaf)
    witnessed = ""
    if args.policy:
        from hub.witness.verify import check_receipt_policy

        witnessed = check_receipt_policy(text, Path(args.policy), verifier)
    what = "document" if leaf is not None else "entry"
    print(f"OK: {what} is included in {cp.origin} at tree size {cp.size}{witnessed}")
    return 0


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    import uvicorn

    from hub.app import create_app
    from hub.keys import create_log_key
    from hub.listen import Server, dual_stack_sockets
    from hub.logging import log_config

    if settings.prod:
        if not settings.log_key_path.exists() or not settings.jwt_key_path.exists():
            raise HubError(
                "HUB_ENV=prod needs real keys: set HUB_LOG_KEY_FILE and"
                " HUB_JWT_KEY_FILE (or run `hub keys init`)"
            )
    else:
        create_log_key(settings.log_key_path, settings.origin)
    if settings.witness_policy is not None:
        from hub.services import load_policy

        load_policy(settings.witness_policy)  # a bad policy is a one-line error, not a crash
    if args.demo:
        await _prepare_demo(settings, args)
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=log_config(),
        log_level="info",
        timeout_graceful_shutdown=20,
    )
    sockets = dual_stack_sockets(args.host, args.port, config.backlog)
    # uvicorn drains, then raises the SIGTERM it caught again; a drained stop exits 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    await Server(config).serve(sockets)
    return 0


async def _prepare_demo(settings: Settings, args: argparse.Namespace) -> None:
    from hub.demo import AGENCIES, seed_demo

    async def work(hub: Any) -> int:
        seed = await seed_demo(hub)
        base = os.environ.get("HUB_PUBLIC_URL") and settings.public_url
        base = base or f"http://{args.host}:{args.port}"
        tokens = {
            f"hospital ({seed.hospital})": issue_token(
                settings, "hospital", f"his@{seed.hospital}", seed.hospital, 86400
            ),
            f"agency with a grant ({AGENCIES[0][0]})": issue_token(
                settings, "agency", f"analyst@{AGENCIES[0][0]}", AGENCIES[0][0], 86400
            ),
            f"agency without a grant ({AGENCIES[2][0]})": issue_token(
                settings, "agency", f"analyst@{AGENCIES[2][0]}", AGENCIES[2][0], 86400
            ),
            f"insurer that claims ({AGENCIES[3][0]})": issue_token(
                settings, "agency", f"clerk@{AGENCIES[3][0]}", AGENCIES[3][0], 86400
            ),
            # A patient number means something only at the hospital that assigned it.
            f"patient ({seed.patient} at {seed.hospital})": issue_token(
                settings, "patient", seed.patient, seed.hospital, 86400
            ),
            "admin": issue_token(settings, "admin", "operator", None, 86400),
        }
        code, number, check = seed.invoice_codes
        print("\nLedger Hub demo" + (" (seeded)" if seed.created else ""), flush=True)
        print(f"  checkpoint:  {base}/log/checkpoint")
        print(f"  verify page: {base}/verify?code={code}&number={number}&check={check}")
        kind, receipt, receipt_check = seed.receipt_codes
        print(f"  a receipt:   {base}/verify?type={kind}&id={receipt}&check={receipt_check}")
        print(f"  GraphQL:     {base}/graphql")
        print("\nDemo tokens (valid 24 h; send as 'Authorization: Bearer <token>'):")
        for who, token in tokens.items():
            print(f"  {who}:\n    {token}")
        print(flush=True)
        return 0

    await _with_hub(settings, work)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Ledger Hub")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP/GraphQL server (migrates first)")
    serve.add_argument("--host", default="127.0.0.1", help="'::' listens on IPv4 and IPv6")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="seed demo data, print tokens")
    serve.set_defaults(handler=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=cmd_migrate)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="keys", required=True)
    keys.add_parser("init", help="create the log and JWT keys if missing").set_defaults(
        handler=cmd_keys_init
    )

    token = sub.add_parser("token", help="tokens").add_subparsers(dest="token", required=True)
    issue = token.add_parser("issue", help="print a JWT signed with the hub's key")
    issue.add_argument(
        "--role",
        required=True,
        choices=["hospital", "agency", "patient", "witness", "auditor", "admin"],
    )
    issue.add_argument("--sub", required=True)
    issue.add_argument("--inst")
    issue.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    issue.set_defaults(handler=cmd_token_issue)

    inst = sub.add_parser("institution", help="institutions").add_subparsers(
        dest="institution", required=True
    )
    add = inst.add_parser("add", help="register an institution (a hospital, an agency, ...)")
    add.add_argument("--id", required=True)
    add.add_argument("--name", required=True)
    add.add_argument(
        "--kind",
        required=True,
        help="a lower-case name: hospital, agency, finance_bureau, school, ...",
    )
    add.add_argument(
        "--bill-code",
        action="append",
        metavar="CODE",
        help="a medical-invoice bill code assigned to it (repeat for several)",
    )
    add.add_argument("--key", help="Ed25519 public key file (PEM) the hospital signs with")
    add.add_argument("--signatures-required", action="store_true")
    add.set_defaults(handler=cmd_institution_add)

    grant = sub.add_parser("grant", help="grants").add_subparsers(dest="grant", required=True)
    gadd = grant.add_parser("add", help="let an agency read documents")
    gadd.add_argument("--agency", required=True)
    gadd.add_argument("--type", required=True)
    gadd.add_argument("--issuers", required=True, help="ID,ID or '*'")
    gadd.add_argument(
        "--view", required=True, help="full, or a view of the type (financial, summary, ...)"
    )
    gadd.add_argument("--purpose", required=True)
    gadd.add_argument("--until", help="last valid date (YYYY-MM-DD)")
    gadd.add_argument(
        "--claims", action="store_true", help="the agency may also book reimbursement claims"
    )
    gadd.set_defaults(handler=cmd_grant_add)

    types = sub.add_parser("type", help="document types").add_subparsers(dest="type", required=True)
    tadd = types.add_parser("add", help="register a document type version from its JSON file")
    tadd.add_argument("file", metavar="FILE.json")
    tadd.set_defaults(handler=cmd_type_add)
    types.add_parser("list", help="list every known document type version").set_defaults(
        handler=cmd_type_list
    )

    ledger = sub.add_parser("ledger", help="the ledger").add_subparsers(
        dest="ledger", required=True
    )
    ledger.add_parser(
        "verify", help="recompute every tile and checkpoint from the leaves"
    ).set_defaults(handler=cmd_ledger_verify)

    backup = sub.add_parser("backup", help="a consistent copy of a running SQLite hub")
    backup.add_argument("file", help="the new file to write (never overwritten)")
    backup.set_defaults(handler=cmd_backup)

    proof = sub.add_parser("proof", help="receipts").add_subparsers(dest="proof", required=True)
    pverify = proof.add_parser("verify", help="verify a .tlog-proof receipt offline")
    pverify.add_argument("file")
    pverify.add_argument("--key", required=True, help="the log's verifier key (GET /log/key)")
    pverify.add_argument("--document", help="the document export (JSON with body and salt)")
    pverify.add_argument("--policy", help="a C2SP tlog-policy file the checkpoint must meet")
    pverify.set_defaults(handler=cmd_proof_verify)

    from hub.witness.cli import register as register_witness

    register_witness(sub)

    adapter = sub.add_parser("adapter", help="hospital-side adapters")
    adapter_sub = adapter.add_subparsers(dest="adapter", required=True)
    # The adapters plug in by entry point (pyproject.toml, "hub.adapters"): the hub does
    # not import them, and runs without them.
    for plugin in entry_points(group="hub.adapters"):
        plugin.load()(adapter_sub)
    return parser


async def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from hub.backup import backup

    print(f"copying {settings.database_url} ...", file=sys.stderr, flush=True)
    report = await asyncio.to_thread(backup, settings.database_url, Path(args.file))
    print(f"backup OK: {report.path} ({report.bytes:,} bytes, tree size {report.tree_size})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if getattr(args, "adapter", None):
            return (
                int(args.handler(args) or 0)
                if not asyncio.iscoroutinefunction(args.handler)
                else int(run(args.handler(args)) or 0)
            )
        return run(args.handler(args, settings))
    except KeyboardInterrupt:
        return 130
    except (HubError, ValueError, OSError) as exc:
        print(f"hub: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
