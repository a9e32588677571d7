#!/usr/bin/env python3
"""A TCP relay that adds a fixed latency before each HTTP response (bench W3).

    delay_proxy.py --upstream HOST:PORT [--port 0] [--delay-ms 20]

Stands in front of a loopback HTTP server to play a distant CDN on a kernel
without netem. Each client connection gets its own upstream connection (so
keep-alive works end to end); every request head read from the client is held
for --delay-ms before it is forwarded, and the responses stream back untouched.
So each request pays the delay once, as it would pay a round trip, whatever the
response size. Requests with a body (Content-Length) are relayed with it;
chunked request bodies are not supported (the benchmarked clients send none).

Prints "PORT <n>" on stdout once listening. Standard library only (asyncio);
the response path is a plain read/write loop with 256 KiB buffers, far above
what the 20 ms-per-request workload needs (bench/run.sh prints its measured
relay throughput).
"""

import argparse
import asyncio
import sys

CHUNK = 256 * 1024
MAX_HEAD = 64 * 1024


async def client_to_upstream(reader, writer, delay):
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            break  # client closed (possibly mid-head)
        except asyncio.LimitOverrunError:
            break
        await asyncio.sleep(delay)
        writer.write(head)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        while length > 0:
            data = await reader.read(min(CHUNK, length))
            if not data:
                break
            writer.write(data)
            length -= len(data)
        await writer.drain()
    if writer.can_write_eof():
        try:
            writer.write_eof()
        except OSError:
            pass


async def upstream_to_client(reader, writer):
    while True:
        data = await reader.read(CHUNK)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    try:
        writer.close()
    except OSError:
        pass


async def handle(client_reader, client_writer, upstream, delay):
    host, port = upstream
    try:
        up_reader, up_writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
    except OSError:
        client_writer.close()
        return
    tasks = [
        asyncio.ensure_future(client_to_upstream(client_reader, up_writer, delay)),
        asyncio.ensure_future(upstream_to_client(up_reader, client_writer)),
    ]
    try:
        # The response side ends the connection: when the server closes, so
        # does the client side; when the client closes, the upstream EOF follows.
        await tasks[1]
    except (ConnectionError, OSError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        for w in (up_writer, client_writer):
            try:
                w.close()
            except OSError:
                pass


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the real server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    up_host, _, up_port = args.upstream.rpartition(":")
    upstream = (up_host or "127.0.0.1", int(up_port))
    delay = args.delay_ms / 1000.0

    async def on_client(reader, writer):
        try:
            await handle(reader, writer, upstream, delay)
        except Exception:  # one broken connection must not stop the relay
            pass

    server = await asyncio.start_server(
        on_client, args.host, args.port, limit=MAX_HEAD, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
