"""An asyncio TCP client, built into a WASI 0.2 command component by componentize-py.

`py-client HOST:PORT MESSAGE`: connect to HOST:PORT, send MESSAGE, close the sending
side, and print `reply: ` and what the peer sent back until it closed. The way Python
network code is written, with no sockbox code: a foreign component for sockbox's
harness.
"""

import asyncio
import sys

from wit_world import exports


async def exchange(host: str, port: int, message: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(message)
    await writer.drain()
    writer.write_eof()
    reply = await reader.read()
    writer.close()
    return reply


class Run(exports.Run):
    def run(self) -> None:
        if len(sys.argv) != 3:
            print("usage: py-client HOST:PORT MESSAGE", file=sys.stderr)
            raise SystemExit(2)
        host, _, port = sys.argv[1].rpartition(":")
        try:
            reply = asyncio.run(exchange(host.strip("[]"), int(port), sys.argv[2].encode()))
        except OSError as err:
            print(f"py-client: {sys.argv[1]}: {err}", file=sys.stderr)
            raise SystemExit(1)
        print(f"reply: {reply.decode()}")
