"""The hand-written aiohttp proxy: an aiohttp web server whose one handler relays
the request body to one upstream through a ClientSession (its keep-alive pool)
and answers with the upstream's status and body. No features: what aiohttp's
server and client cost a proxy before the gateway adds anything.

    python -m bench.references.aiohttp_proxy --upstream 127.0.0.1:PORT   # prints "ready port=P"
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

from bench.references.serving import add_upstream_argument, run_forever

SESSION = web.AppKey("session", aiohttp.ClientSession)
BASE = web.AppKey("base", str)


async def relay(request: web.Request) -> web.Response:
    body = await request.read()
    session = request.app[SESSION]
    headers = {"content-type": request.headers.get("content-type", "application/json")}
    async with session.request(request.method, request.app[BASE] + request.path_qs, data=body, headers=headers) as r:
        answer = await r.read()
        return web.Response(body=answer, status=r.status, content_type=r.content_type)


async def serve(upstream: tuple[str, int], port: int) -> None:
    app = web.Application()
    app[BASE] = f"http://{upstream[0]}:{upstream[1]}"
    app.router.add_route("*", "/{tail:.*}", relay)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        app[SESSION] = session
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
        await site.start()
        print(f"ready port={runner.addresses[0][1]}", flush=True)
        try:
            await site._server.serve_forever()  # type: ignore[union-attr]
        finally:
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_upstream_argument(parser)
    args = parser.parse_args()
    run_forever(serve(args.upstream, args.port))


if __name__ == "__main__":
    main()
