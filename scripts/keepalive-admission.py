#!/usr/bin/env python3
"""Keep-alive pollers against handshake admission (issue #11 item 6).

Starts BINARY (a wsgate build) standalone on free 127.0.0.1 ports with
--max-pending-handshakes 8, opens 8 HTTP keep-alive connections that poll
/healthz every second, and meanwhile tries a WebSocket upgrade every 100 ms
for SECONDS. Prints how many upgrades were refused and for how long in a row.

    scripts/keepalive-admission.py target/debug/wsgate [SECONDS]

Before the fix every poller held a handshake slot for its whole connection,
so upgrades were refused for as long as the pollers stayed connected.
"""
import socket
import subprocess
import sys
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def status(head):
    return int(head.split()[1]) if head else None


def main():
    binary = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    public, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [binary, "--allow-anonymous", "--listen", f"127.0.0.1:{public}",
         "--admin-listen", f"127.0.0.1:{admin}", "--max-pending-handshakes", "8",
         "--max-connections-per-ip", "100000", "--handshake-timeout", "10s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", admin), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        stop = threading.Event()

        def poller():
            s = socket.create_connection(("127.0.0.1", public), timeout=5)
            while not stop.is_set():
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                head, rest = read_head(s)
                if head is None:
                    s = socket.create_connection(("127.0.0.1", public), timeout=5)
                    continue
                length = int(next((l.split(":")[1] for l in head.split("\r\n")
                                   if l.lower().startswith("content-length:")), "0"))
                while len(rest) < length:
                    rest += s.recv(4096)
                stop.wait(1.0)

        threads = [threading.Thread(target=poller, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        tried = refused = 0
        run = longest = 0.0
        run_start = None
        started = time.time()
        upgraded = []
        while time.time() - started < seconds:
            s = socket.create_connection(("127.0.0.1", public), timeout=5)
            s.sendall(b"GET /ws?user=u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                      b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            head, _ = read_head(s)
            tried += 1
            now = time.time()
            if status(head) == 101:
                upgraded.append(s)
                if run_start is not None:
                    longest = max(longest, now - run_start)
                    run_start = None
            else:
                refused += 1
                s.close()
                if run_start is None:
                    run_start = now
            time.sleep(0.1)
        if run_start is not None:
            longest = max(longest, time.time() - run_start)
        stop.set()
        print(f"{binary}: {tried} upgrades tried over {seconds:.0f} s with 8 keep-alive "
              f"/healthz pollers at --max-pending-handshakes 8: {refused} refused (503), "
              f"longest refused stretch {longest:.1f} s")
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
