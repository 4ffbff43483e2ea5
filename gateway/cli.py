"""``dvcgw``: serve, check-config, sandbox, the operator's dead-letter commands, the 766 table, and
``dvcgw audit verify|export`` (the message log's own file, read directly).

``dvcgw dlq …`` talks to the running daemon's operator API; it never opens the store directly,
so it works the same on SQLite and Kafka and never races the daemon. ``dvcgw kpi`` reads the
indicators' own file read-only (SQLite WAL: the daemon may be writing it meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from config.schema import Settings, load
from core.errors import ConfigError
from core.version import __version__

EXIT_CONFIG = 2
EXIT_REMOTE = 3



def _operator_call_args(parser: argparse.ArgumentParser) -> None:
    """--url, --key and --config of a command that calls a running daemon's operator API
    (:func:`_operator_call`)."""
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the daemon's base URL")
    parser.add_argument("--key", default=None, help="operator API key (default: $DVCGW_OPERATOR_KEY, "
                        "or [operator] api_key of --config)")
    parser.add_argument("--config", default=os.environ.get("DVCGW_CONFIG"))

def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from gateway import runtime

        runtime.use_fast_loop()
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"dvcgw: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dvcgw", description="DVCQG sync gateway")
    p.add_argument("--version", action="version", version=f"dvcgw {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the daemon")
    serve.add_argument("--config", default=os.environ.get("DVCGW_CONFIG"),
                       help="settings file (default: $DVCGW_CONFIG)")
    serve.set_defaults(func=_serve)

    check = sub.add_parser("check-config", help="validate a settings file without starting anything")
    check.add_argument("file")
    check.add_argument("--print", action="store_true", dest="print_where",
                       help="print where the daemon will listen and store, as shell-readable lines (no secrets)")
    check.set_defaults(func=_check_config)

    sandbox = sub.add_parser("sandbox", help="start the national-portal sandbox")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=9000)
    sandbox.add_argument("--latency", default="0s", help="wait before answering each portal call, e.g. 50ms")
    sandbox.add_argument("--rate-limit", type=int, default=0,
                         help="portal calls admitted per second, the rest answered 429 (0 = no limit)")
    sandbox.add_argument("--payment-callback", default="http://127.0.0.1:8080/v1/payments/confirm",
                         help="where the payment platform's side sends CONFIRM callbacks (the gateway's route)")
    sandbox.add_argument("--payment-secret", default="sandbox-payment-secret",
                         help="the payment checksum secret (the gateway's [payment] secret)")
    sandbox.set_defaults(func=_sandbox)

    for name, helptext, base in (("dlq", "dead letters of a running daemon", "/v1/dead-letters"),
                                 ("jobs", "dead-lettered jobs (provincial delivery, e-receipts) of a running daemon",
                                  "/v1/jobs/dead-letters")):
        dlq = sub.add_parser(name, help=helptext)
        _operator_call_args(dlq)
        dsub = dlq.add_subparsers(dest="dlq_command", required=True)
        ls = dsub.add_parser("list", help="list dead letters")
        ls.add_argument("--all", action="store_true", help="follow the cursor through every page")
        for cmd, cmd_help in (("show", "show one"), ("replay", "run it again from the head of the ladder"),
                              ("drop", "delete one")):
            c = dsub.add_parser(cmd, help=cmd_help)
            c.add_argument("id")
        dlq.set_defaults(func=_dlq, base=base)

    books = sub.add_parser("books", help="certification register books of a running daemon (operator)")
    _operator_call_args(books)
    bsub = books.add_subparsers(dest="books_command", required=True)
    bls = bsub.add_parser("list", help="list books (all authorities, or one)")
    bls.add_argument("--authority", default=None, help="an authority code")
    for cmd, cmd_help in (("open", "open a new book (none may be open)"),
                          ("close", "close the open book; the next certification opens a new one")):
        bsub.add_parser(cmd, help=cmd_help).add_argument("authority", help="the authority's code")
    books.set_defaults(func=_books)

    maint = sub.add_parser("maintenance", help="take a running daemon out of its load balancer (/readyz 503), "
                           "or put it back")
    maint.add_argument("state", choices=("on", "off", "show"))
    maint.add_argument("--reason", default="", help="why, shown on /readyz and /status")
    _operator_call_args(maint)
    maint.set_defaults(func=_maintenance)
    backup = sub.add_parser("backup", help="a consistent copy of every SQLite file of a running daemon "
                            "(or, --offline, of a stopped one) into a new folder, with a manifest")
    backup.add_argument("dir", help="the folder to create (it must not exist, or be empty)")
    backup.add_argument("--offline", action="store_true",
                        help="the daemon is stopped: copy the files named by --config directly")
    _operator_call_args(backup)
    backup.set_defaults(func=_backup)
    restore = sub.add_parser("restore", help="put a backup's files where --config says they live "
                             "(the daemon stopped); the manifest is checked first")
    restore.add_argument("dir", help="a folder made by dvcgw backup")
    restore.add_argument("--force", action="store_true", help="replace files that exist")
    restore.add_argument("--verify-only", action="store_true", help="check the backup against its manifest, "
                         "write nothing")
    restore.add_argument("--config", default=os.environ.get("DVCGW_CONFIG"))
    restore.set_defaults(func=_restore)
    kpi = sub.add_parser("kpi", help="the 766 indicators as a table (reads the indicators' file)")
    kpi.add_argument("--config", default=os.environ.get("DVCGW_CONFIG"))
    kpi.add_argument("--period", default=None, help="2025-11 | 2025-Q4 | 2025 (default: the current month)")
    kpi.add_argument("--unit", default="all", help="a unit code, or all (the province; the default)")
    kpi.add_argument("--every-unit", action="store_true", help="every unit, then the province")
    kpi.set_defaults(func=_kpi)
    _audit_parser(sub)
    return p


def _audit_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the message log: verify its chain and seals, or export a sealed archive "
                           "(reads [audit] path directly; the daemon may be running)")
    audit.add_argument("--config", default=os.environ.get("DVCGW_CONFIG"))
    asub = audit.add_subparsers(dest="audit_command", required=True)
    ver = asub.add_parser("verify", help="walk the chain and the seals; report the first broken link (exit 1)")
    ver.add_argument("--from", dest="first", default=None, help="a record seq or an ISO 8601 time (default: the start)")
    ver.add_argument("--to", dest="last", default=None, help="a record seq or an ISO 8601 time (default: the end)")
    exp = asub.add_parser("export", help="write a self-contained archive of every sealed record (tar.gz)")
    exp.add_argument("--out", required=True, help="the archive to write, e.g. audit-2026-12.tar.gz")
    exp.add_argument("--roots", nargs="*", default=None,
                     help="trust-root PEM files to include (default: [signing] trust_roots)")
    audit.set_defaults(func=_audit)


def _audit(args: argparse.Namespace) -> int:
    from audit import export, store, verify

    settings = _load(args.config)
    path = settings.audit.file(settings.storage.path)
    try:
        conn = store.open_reader(path)
    except FileNotFoundError:
        print(f"dvcgw: no message log at {path}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.audit_command == "verify":
            first = _seq_arg(conn, args.first, after=True) or 0
            last = _seq_arg(conn, args.last, after=False)
            report = verify.verify(conn, first, last)
            print("\n".join(report.lines()))
            return 0 if report.ok else 1
        roots = [Path(p) for p in (settings.signing.trust_roots if args.roots is None else args.roots)]
        try:
            first, last = export.export(conn, Path(args.out), roots)
        except ValueError as exc:
            print(f"dvcgw: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.out}: records {first}..{last}")
        return 0
    finally:
        conn.close()


def _seq_arg(conn: Any, value: str | None, *, after: bool) -> int | None:
    """``--from``/``--to``: a record seq, or an ISO 8601 time (the first record at or after it, or
    the last at or before it)."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    from datetime import UTC, datetime

    from audit import store

    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError("--from/--to", f"expected a record number or an ISO 8601 time, got {value!r}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    found = store.seq_at(conn, when.timestamp(), after=after)
    return found if found is not None else (10**18 if after else 0)


def _load(path: str | None) -> Settings:
    if not path:
        raise ConfigError("--config", "no settings file: pass --config FILE or set DVCGW_CONFIG")
    return load(path)


def _check_config(args: argparse.Namespace) -> int:
    from gateway.tls import server_context

    settings = load(args.file)
    server_context(settings.server)  # a key that is not the certificate's is a ConfigError here too
    if args.print_where:
        print(f"listen={settings.server.listen}\nstore={settings.storage.path}\n"
              f"backend={settings.queue.backend}\nportal={settings.portal.adapter_url}")
        return 0
    print(f"{args.file}: OK (queue={settings.queue.backend}, portal={settings.portal.adapter_url}, "
          f"{len(settings.agencies)} agencies)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """The daemon: one process, one event loop (HTTP API, store, delivery engine). SIGTERM drains:
    ``/readyz`` answers 503 for ``[server] drain_delay`` with the listener open, then in-flight
    requests and portal calls get ``[server] shutdown_grace``; Ctrl-C skips the delay (gateway.serving)."""
    import socket

    from gateway.app import create_app
    from gateway.logs import setup_logging
    from gateway.serving import serve
    from gateway.tls import server_context

    settings = _load(args.config)
    setup_logging(settings.log)
    tls = server_context(settings.server)
    try:
        sock = socket.create_server((settings.server.host, settings.server.port), backlog=1024)
    except OSError as exc:
        print(f"dvcgw: cannot listen on {settings.server.listen}: {exc}", file=sys.stderr)
        return 2
    serve(create_app(settings), sock, settings, tls)
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from adapters.sandbox.app import run_sandbox
    from gateway.logs import setup_logging
    from gateway.runtime import use_fast_loop

    setup_logging()
    use_fast_loop()
    run_sandbox(args.host, args.port, latency=args.latency, rate_limit=args.rate_limit,
                payment_secret=args.payment_secret, payment_callback=args.payment_callback)
    return 0


def _operator_key(args: argparse.Namespace) -> str:
    if args.key:
        return str(args.key)
    env = os.environ.get("DVCGW_OPERATOR_KEY")
    if env:
        return env
    if args.config and Path(args.config).exists():
        key = load(args.config).operator.api_key
        if key:
            return key
    raise ConfigError("--key", "no operator key: pass --key, set DVCGW_OPERATOR_KEY, or --config")


def _dlq(args: argparse.Namespace) -> int:
    return asyncio.run(_dlq_async(args, _operator_key(args)))


async def _dlq_async(args: argparse.Namespace, key: str) -> int:
    base = args.url.rstrip("/") + args.base
    headers = {"X-API-Key": key}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as s:
        try:
            if args.dlq_command == "list":
                return await _dlq_list(s, base, args.all)
            method, url = {"show": ("GET", f"{base}/{args.id}"), "replay": ("POST", f"{base}/{args.id}/replay"),
                           "drop": ("DELETE", f"{base}/{args.id}")}[args.dlq_command]
            async with s.request(method, url) as r:
                body = await r.text()
                if r.status >= 400:
                    return _remote_error(r.status, body)
                print(body if body else f"{args.id}: dropped")
                return 0
        except aiohttp.ClientError as exc:
            print(f"dvcgw: cannot reach the daemon at {args.url}: {exc}", file=sys.stderr)
            return EXIT_REMOTE


async def _dlq_list(s: aiohttp.ClientSession, base: str, follow: bool) -> int:
    cursor: str | None = None
    jobs = base.endswith("/jobs/dead-letters")
    if jobs:
        print(f"{'ID':>8}  {'TOPIC':10}  {'KEY':32}  {'CODE':16}  {'ATT':>3}  MESSAGE")
    else:
        print(f"{'ID':>8}  {'MaHoSo':32}  {'KIND':8}  {'CLASS':10}  {'CODE':6}  {'ATT':>3}  MESSAGE")
    while True:
        params = {"cursor": cursor} if cursor else {}
        async with s.get(base, params=params) as r:
            if r.status >= 400:
                return _remote_error(r.status, await r.text())
            page: dict[str, Any] = await r.json()
        for d in page["items"]:
            if jobs:
                print(f"{d['id']:>8}  {d['topic']:10}  {d['key']:32}  {d['code']:16}  {d['attempts']:>3}  "
                      f"{d['message']}")
                continue
            print(f"{d['id']:>8}  {d['MaHoSo']:32}  {d['kind']:8}  {d['reason_class']:10}  {d['code']:6}  "
                  f"{d['attempts']:>3}  {d['message']}")
        cursor = page.get("next")
        if not cursor or not follow:
            if cursor:
                print(f"(more: --all to list every page; next cursor {cursor})")
            return 0


def _maintenance(args: argparse.Namespace) -> int:
    return asyncio.run(_maintenance_async(args, _operator_key(args)))


async def _maintenance_async(args: argparse.Namespace, key: str) -> int:
    url = args.url.rstrip("/") + "/v1/maintenance"
    if args.state == "show":
        body = await _operator_call(args.url, key, "GET", url)
    else:
        body = await _operator_call(args.url, key, "PUT", url,
                                    json={"enabled": args.state == "on", "reason": args.reason})
    if isinstance(body, int):
        return body
    mode = json.loads(body)
    if mode["enabled"]:
        print(f"maintenance: on since {mode['since']}" + (f" ({mode['reason']})" if mode["reason"] else "")
              + "; /readyz answers 503")
    else:
        print("maintenance: off; /readyz answers as its checks say")
    return 0


def _books(args: argparse.Namespace) -> int:
    return asyncio.run(_books_async(args, _operator_key(args)))


async def _books_async(args: argparse.Namespace, key: str) -> int:
    base = args.url.rstrip("/") + "/v1/certification-books"
    if args.books_command == "list":
        request = ("GET", base, {"authority": args.authority} if args.authority else {})
    else:
        request = ("POST", f"{base}/{args.authority}/{args.books_command}", {})
    body = await _operator_call(args.url, key, request[0], request[1], params=request[2])
    if isinstance(body, int):
        return body
    data = json.loads(body)
    print(f"{'AUTHORITY':16}  {'BOOK':20}  {'ID':18}  {'LAST':>6}  {'STATUS':6}  OPENED / CLOSED")
    for b in data["books"] if args.books_command == "list" else [data]:
        print(f"{b['authority_code']:16}  {b['name']:20}  {b['id']:18}  {b['current_number']:>6}  {b['status']:6}  "
              f"{b['opened_at']}" + (f" / {b['closed_at']}" if b["closed_at"] else ""))
    return 0


async def _operator_call(daemon: str, key: str, method: str, url: str, **kw: Any) -> str | int:
    """One request to the daemon's operator API: the answer's body, or (printed first) the exit
    status of a failure: an HTTP error answer, or no answer at all."""
    async with aiohttp.ClientSession(headers={"X-API-Key": key}, timeout=aiohttp.ClientTimeout(total=30)) as s:
        try:
            async with s.request(method, url, **kw) as r:
                body = await r.text()
                return _remote_error(r.status, body) if r.status >= 400 else body
        except aiohttp.ClientError as exc:
            print(f"dvcgw: cannot reach the daemon at {daemon}: {exc}", file=sys.stderr)
            return EXIT_REMOTE


def _remote_error(status: int, body: str) -> int:
    try:
        msg = json.loads(body).get("message", body)
    except ValueError:
        msg = body
    print(f"dvcgw: HTTP {status}: {msg}", file=sys.stderr)
    return EXIT_REMOTE




def _backup(args: argparse.Namespace) -> int:
    from gateway import backup

    target = Path(args.dir)
    try:
        backup.private_dir(target)
    except backup.BackupError as exc:
        print(f"dvcgw: backup: {exc}", file=sys.stderr)
        return 1
    try:
        if args.offline:
            manifest = asyncio.run(backup.take(_load(args.config), target, None, _Progress().files))
        else:
            status = asyncio.run(_backup_online(args, _operator_key(args), target))
            if status:
                _discard(target)
                return status
            manifest = backup.verify(target)
    except (backup.BackupError, ConfigError) as exc:
        _discard(target)
        if isinstance(exc, ConfigError):
            raise
        print(f"dvcgw: backup: {exc}", file=sys.stderr)
        return 1
    _print_manifest(target, manifest)
    return 0


async def _backup_online(args: argparse.Namespace, key: str, target: Path) -> int:
    """Ask the daemon for the stream, write it to ``target`` with a progress display, unpack it."""
    from gateway import backup

    archive = target / ".incoming.tar"
    show = _Progress()
    print(f"dvcgw: the daemon at {args.url} is copying its files…", file=sys.stderr)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)
    async with aiohttp.ClientSession(headers={"X-API-Key": key}, timeout=timeout) as s:
        try:
            async with s.post(args.url.rstrip("/") + "/v1/backup") as r:
                if r.status >= 400:
                    return _remote_error(r.status, await r.text())
                total, done = r.content_length or 0, 0
                with archive.open("wb") as out:
                    async for chunk in r.content.iter_chunked(backup.CHUNK):
                        out.write(chunk)
                        done += len(chunk)
                        show.bytes(done, total)
                show.end()
                if total and done != total:
                    raise backup.BackupError(f"the stream ended after {done} of {total} bytes")
        except aiohttp.ClientError as exc:
            print(f"dvcgw: cannot reach the daemon at {args.url}: {exc}", file=sys.stderr)
            return EXIT_REMOTE
    backup.unpack(archive, target)
    archive.unlink()
    return 0


def _discard(target: Path) -> None:
    """A backup that failed leaves no folder that could pass for one."""
    for child in target.iterdir():
        child.unlink()
    target.rmdir()


class _Progress:
    """One line that is rewritten on a terminal; a line per tenth otherwise (logs, CI)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = -1

    def bytes(self, done: int, total: int) -> None:
        pct = done * 100 // total if total else 0
        if self.tty:
            print(f"\r  received {done / 1e6:8.1f} of {total / 1e6:.1f} MB ({pct:3d} %)", end="", file=sys.stderr)
        elif pct // 10 != self.last:
            self.last = pct // 10
            print(f"  received {done / 1e6:.1f} of {total / 1e6:.1f} MB ({pct} %)", file=sys.stderr)

    def files(self, name: str, done: int, total: int) -> None:
        if done == total:
            print(f"  copied {name} ({total / 1e6:.1f} MB)", file=sys.stderr)

    def end(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _print_manifest(target: Path, manifest: dict[str, Any]) -> None:
    print(f"{'FILE':24}  {'BYTES':>12}  {'SCHEMA':>6}  SHA-256")
    for e in manifest["files"]:
        print(f"{e['file']:24}  {e['bytes']:>12}  {e['user_version']:>6}  {e['sha256']}")
    print(f"backup of {len(manifest['files'])} files in {target} (checked against {target / 'manifest.json'})")


def _restore(args: argparse.Namespace) -> int:
    from gateway import backup

    source = Path(args.dir)
    try:
        if args.verify_only:
            manifest = backup.verify(source)
            print(f"{source}: {len(manifest['files'])} files match the manifest")
            return 0
        settings = _load(args.config)
        done = backup.restore(source, settings, force=args.force,
                              progress=lambda name, path: print(f"  restored {name} → {path}", file=sys.stderr))
    except backup.BackupError as exc:
        print(f"dvcgw: restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored {len(done)} files from {source}; start the daemon (an older store schema is migrated then)")
    return 0


def _kpi(args: argparse.Namespace) -> int:
    """Compute the figures of one period from the file, as ``GET /v1/kpi`` does, and print them."""
    import sqlite3
    import time

    from monitoring.kpi import Calculator, PeriodError, parse_period
    from monitoring.kpi.periods import current_periods
    from monitoring.kpi.store import open_reader

    settings = _load(args.config)
    calc = Calculator(settings)
    now = time.time()
    try:
        period = parse_period(args.period or current_periods(now, calc.offset_s)["month"].id, calc.offset_s)
    except PeriodError as exc:
        print(f"dvcgw: --period: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    path = settings.kpi.file(settings.storage.path)
    if not path.exists():
        print(f"dvcgw: no indicators file at {path} (has the daemon run with [kpi] enabled = true?)",
              file=sys.stderr)
        return 1
    try:
        conn = open_reader(path)
        try:
            report = calc.one(conn, period, None if args.every_unit else args.unit, now)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        print(f"dvcgw: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    _print_kpi(period.id, report.rows)
    return 0


def _print_kpi(period_id: str, rows: list[Any]) -> None:
    print(f"766 indicators, {period_id} (estimates; the portal's own score is authoritative)")
    print(f"{'INDICATOR':34}  {'UNIT':14}  {'NUMERATOR':>9}  {'DENOMINATOR':>11}  {'RATE':>7}  "
          f"{'POINTS':>13}  {'BASIS':5}  {'TARGET':>6}")
    for r in rows:
        target = "-" if r.target is None else f"{r.target:.0%}"
        points = f"{r.score:.2f} / {r.max_points:g}"
        print(f"{r.indicator:34}  {r.unit:14}  {r.numerator:>9}  {r.denominator:>11}  {r.ratio:>7.2%}  "
              f"{points:>13}  {r.basis:5}  {target:>6}")
    if not rows:
        print("(no such unit: give a configured unit code, or all)")
