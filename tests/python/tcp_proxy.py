#!/usr/bin/env python3
"""A TCP forwarder standing for a storage endpoint in outage tests: listens on
127.0.0.1:PORT, forwards every connection to TARGET (HOST:PORT), and prints the request
line of each HTTP request it forwards (`PUT /bucket/key HTTP/1.1`), flushed, so a test
can kill it (SIGKILL) at the moment a given request goes through. Killing it is what a
storage outage looks like to clients (connections refused or cut); starting it again on
the same port brings the same data back, which killing the in-memory S3 server behind
it would not.

    tcp_proxy.py PORT TARGET
"""

import asyncio
import sys

METHODS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ")


async def pipe(reader, writer, show):
    try:
        while data := await reader.read(65536):
            if show and data.startswith(METHODS):
                print(data.split(b"\r\n", 1)[0].decode("latin-1"), flush=True)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(port, target):
    host, target_port = target.rsplit(":", 1)

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(target_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pipe(client_reader, server_writer, True),
            pipe(server_reader, client_writer, False),
        )

    server = await asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
