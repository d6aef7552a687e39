"""Reference proxies written by the project, run beside the gateway and nginx so
its costs have a floor measured in the same run: each is the least a Python
proxy of that kind does (no features), pinned to the proxy core like the gateway.

* ``bare_http``: uvloop + httptools protocols, a keep-alive upstream pool.
* ``aiohttp_proxy``: an aiohttp web server relaying through a ClientSession.
* ``grpc_proxy``: a grpc.aio generic handler forwarding raw bytes to one channel.
* ``grpc_threaded_proxy``: the same on grpcio's threaded server (the other serving path).

Each is ``python -m bench.references.<name> --upstream HOST:PORT`` and prints
``ready port=P`` once it listens on 127.0.0.1.
"""
