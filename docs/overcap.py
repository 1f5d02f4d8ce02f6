#!/usr/bin/env python3
"""Over the socket cap: sequential reconnects and a flood against `echo` under
`sockbox run --max-sockets 2`, WASI 0.2 and 0.3 (docs/performance.md). Run from the
repository after `cargo build --release`: `taskset -c 0 python3 docs/overcap.py`."""
import socket, subprocess, sys, time, re, os

SOCKBOX = os.environ.get("SOCKBOX", "target/release/sockbox")

def start(build, cap):
    args = [SOCKBOX, "run"] + (["--p3"] if build == "p3" else []) + [
        "--allow-listen", "tcp://127.0.0.1:*", "--max-sockets", str(cap), "--", "echo", "127.0.0.1:0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    host, port = m.group(1).rsplit(":", 1)
    return proc, (host, int(port))

def round_trip(addr):
    s = socket.create_connection(addr, timeout=5)
    try:
        try:
            s.sendall(b"ping")
            got = s.recv(4)
        except OSError:
            return False
        if got != b"ping":
            return False
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
        return True
    finally:
        s.close()

def sequential(build, n=300):
    proc, addr = start(build, 2)
    refused = sum(0 if round_trip(addr) else 1 for _ in range(n))
    proc.kill(); proc.wait()
    return refused

def flood(build, n=300):
    proc, addr = start(build, 2)
    holder = socket.create_connection(addr, timeout=5)
    holder.sendall(b"x"); assert holder.recv(1) == b"x"
    t0 = time.perf_counter()
    conns = [socket.create_connection(addr, timeout=30) for _ in range(n)]
    for c in conns:
        try:
            c.recv(1)
        except OSError:
            pass
    t1 = time.perf_counter()
    # A newcomer after the flood, once the holder leaves.
    holder.shutdown(socket.SHUT_WR)
    while holder.recv(4096):
        pass
    holder.close()
    tries = 1
    while not round_trip(addr):
        tries += 1
    proc.kill(); proc.wait()
    for c in conns:
        c.close()
    return t1 - t0, tries

label = sys.argv[1] if len(sys.argv) > 1 else ""
for build in ["p2", "p3"]:
    refused = sequential(build)
    secs, tries = flood(build)
    print(f"{label} {build}: sequential 300 clients at cap 2: {refused} refused; "
          f"flood of 300 past the cap closed in {secs*1000:.0f} ms; newcomer served on try {tries}")
