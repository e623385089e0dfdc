"""Hostile-input load against a running `yunying serve` (see run.sh): what unauthenticated deep
XML costs the server, and whether idle sockets can take it down.

Usage: attack.py BASE_URL SERVER_PID {xml|idle} [seconds] [clients]
Prints one JSON object: requests sent, server CPU per request, peak RSS, and the latency of
legitimate requests sent meanwhile.
"""

import json
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request

BASE, PID, MODE = sys.argv[1].rstrip("/"), int(sys.argv[2]), sys.argv[3]
SECONDS = float(sys.argv[4]) if len(sys.argv) > 4 else 10
CLIENTS = int(sys.argv[5]) if len(sys.argv) > 5 else 6
HOST, PORT = urllib.parse.urlparse(BASE).hostname, urllib.parse.urlparse(BASE).port
TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


def cpu_seconds():
    fields = open(f"/proc/{PID}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status(key):
    for line in open(f"/proc/{PID}/status"):
        if line.startswith(key):
            return int(line.split()[1]) // 1024
    return 0


def legit_latencies(stop, out):
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{BASE}/healthz", timeout=30) as r:
                r.read()
            out.append((time.perf_counter() - started) * 1000)
        except Exception:  # noqa: BLE001 - a failed request is what we measure
            out.append(float("inf"))
        time.sleep(0.05)


def deep_xml_body():
    depth = 9000
    return ("<xml>" + "<a>" * depth + "</a>" * depth + "<Encrypt>AAAA</Encrypt></xml>").encode()


def xml_attacker(stop, counter):
    body = deep_xml_body()
    query = "msg_signature=" + "0" * 40 + "&timestamp=" + str(int(time.time())) + "&nonce=1"
    head = (f"POST /callbacks/demo_robot?{query} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: application/xml\r\n\r\n").encode()
    while not stop.is_set():
        try:
            with socket.create_connection((HOST, PORT), timeout=30) as s:
                while not stop.is_set():
                    s.sendall(head + body)
                    reply = s.recv(4096)
                    if not reply:
                        break
                    counter[0] += 1
        except OSError:
            time.sleep(0.01)


def main():
    stop = threading.Event()
    latencies, counter = [], [0]
    cpu0, rss0 = cpu_seconds(), status("VmRSS")
    result = {"mode": MODE, "rss_before_mib": rss0}
    watcher = threading.Thread(target=legit_latencies, args=(stop, latencies))
    watcher.start()
    if MODE == "xml":
        threads = [threading.Thread(target=xml_attacker, args=(stop, counter)) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(SECONDS)
        stop.set()
        for t in threads:
            t.join()
        cpu = cpu_seconds() - cpu0
        result.update(requests=counter[0], server_cpu_us_per_request=round(cpu / max(counter[0], 1) * 1e6, 1))
    else:
        sockets, refused = [], 0
        for _ in range(CLIENTS):
            try:
                sockets.append(socket.create_connection((HOST, PORT), timeout=5))
            except OSError:
                refused += 1
        opened = time.time()
        time.sleep(SECONDS)
        closed = 0
        for s in sockets:
            s.setblocking(False)
            try:
                closed += s.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        result.update(idle_sockets=len(sockets), refused_at_connect=refused,
                      closed_by_server_after_s=round(time.time() - opened, 1), closed_by_server=closed)
        stop.set()
        for s in sockets:
            s.close()
    watcher.join()
    finite = sorted(x for x in latencies if x != float("inf"))
    result.update(
        rss_peak_mib=status("VmHWM"), rss_after_mib=status("VmRSS"),
        legit_requests=len(latencies), legit_failed=len(latencies) - len(finite),
        legit_p50_ms=round(finite[len(finite) // 2], 2) if finite else None,
        legit_p99_ms=round(finite[int(len(finite) * 0.99)], 2) if finite else None,
        legit_max_ms=round(finite[-1], 2) if finite else None,
    )
    print(json.dumps(result))


main()
