"""The baselines of the gateway benches. For accepted PUTs per second: a bare aiohttp handler that
reads the body, parses the same JSON the gateway parses, and answers 202 with a body of the gateway's shape. Nothing
else: no authentication, validation, storage or metrics. For payment callbacks per second
(bench_payments): a handler that parses the CONFIRM and answers the acknowledgement's shape.

Run as ``python -m bench._bare --port N [--loop uvloop]``; it prints ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web


async def put_dossier(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    return web.json_response({"event_id": "1", "sequence": len(body)}, status=202)


async def confirm(request: web.Request) -> web.Response:
    """The baseline of bench_payments: parse the callback, answer an acknowledgement of the
    gateway's shape; no checksum, no lookup, no store."""
    body = json.loads(await request.read())
    ack = {"MaLoi": "00", "MoTaLoi": "Thành công", "MaDoiTac": body.get("MaDoiTac", ""),
           "MaThamChieu": body.get("MaThamChieu", ""), "ThoiGianGD": body.get("ThoiGianGD", ""),
           "MaXacThuc": body.get("MaXacThuc", "")}
    return web.json_response(ack, dumps=lambda o: json.dumps(o, separators=(",", ":"), ensure_ascii=False))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="event loop: aiohttp's default (asyncio) or uvloop, the one dvcgw runs on")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application(client_max_size=1_048_576)
    app.router.add_put("/v1/dossiers/{MaHoSo}", put_dossier)
    app.router.add_post("/v1/payments/confirm", confirm)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=lambda _: print("ready", flush=True))


if __name__ == "__main__":
    main()
