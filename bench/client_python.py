"""bench/client_python.py: the Python requests.Session comparator of the
sequential measurement (Debian python3-requests; run with /usr/bin/python3).

    /usr/bin/python3 bench/client_python.py URL N METHOD BODY [HEADER ...]

Sends N identical requests over one keep-alive Session, checks each status and
decodes each JSON body (as cometkey does), and prints one line:
requests=N seconds=S cpu=S hwm_kb=K failed=F (timed loop only; cpu is
user+sys of this process).
"""
import sys
import time

import requests


def hwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    url, n, method, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
    headers = {}
    for h in sys.argv[5:]:
        name, value = h.split(":", 1)
        headers[name.strip()] = value.strip()
    session = requests.Session()
    session.request(method, url, data=body, headers=headers).json()  # warm-up: connects
    failed = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        r = session.request(method, url, data=body, headers=headers)
        if r.status_code != 200 or not r.json().get("success"):
            failed += 1
    t1, c1 = time.perf_counter(), time.process_time()
    print("requests=%d seconds=%.6f cpu=%.6f hwm_kb=%d failed=%d"
          % (n, t1 - t0, c1 - c0, hwm_kb(), failed))


main()
