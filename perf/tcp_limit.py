#!/usr/bin/env python3
"""Single-stream loopback TCP throughput: the ceiling for "data via a worker over loopback TCP".

    python3 perf/tcp_limit.py [SECONDS] [CHUNK_BYTES]

One sender process and one receiver process (fork, so no shared GIL), one TCP connection on
127.0.0.1, default socket buffers, 1 MiB send()/recv_into() calls. Both sides hand whole
buffers to the kernel, so the interpreter costs ~1 us per MiB and the figure is the kernel's
loopback copy limit (about what iperf3 -c 127.0.0.1 reports), with no daemon to start or
kill. Prints one line: `tcp_limit gib_per_s=<rate> bytes=<n> secs=<t> chunk=<c>`.
"""
import os
import socket
import sys
import time


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    pid = os.fork()
    if pid == 0:  # sender
        try:
            srv.close()
            s = socket.create_connection(("127.0.0.1", port))
            buf = os.urandom(chunk)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                s.sendall(buf)
            s.close()
        finally:
            os._exit(0)

    conn, _ = srv.accept()
    buf = bytearray(chunk)
    view = memoryview(buf)
    total = 0
    start = None
    while True:
        n = conn.recv_into(view)
        if n == 0:
            break
        if start is None:
            start = time.monotonic()  # from the first byte: excludes connect and fork
        total += n
    end = time.monotonic()
    conn.close()
    srv.close()
    _, status = os.waitpid(pid, 0)
    if status != 0 or start is None or end <= start:
        print("tcp_limit: sender failed", file=sys.stderr)
        return 1
    secs = end - start
    print(f"tcp_limit gib_per_s={total / secs / (1 << 30):.3f} bytes={total} secs={secs:.3f} chunk={chunk}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
