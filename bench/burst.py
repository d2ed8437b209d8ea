#!/usr/bin/env python3
"""Burst client of the compose-and-script baseline (bench/baseline.sh), the one
bench/harness.rs compares racy-matrix against.

Sends N form POSTs (account, amount, delay_ms) to one lab endpoint the way the seed
lab's client does: it starts one thread per request, one after another, each thread
POSTs the form and records the status. Prints `acked=<n> failed=<n>` (acked: 2xx),
and with --verbose one JSON line per response before it.
Python 3 standard library only.
"""
import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_S = 60


def post(url, form, results, i):
    body = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    start = time.monotonic()
    status, text, error = None, "", None
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            status, text = r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:  # a non-2xx answer
        status, text = e.code, e.read().decode("utf-8", "replace")
    except Exception as e:  # timeout, refused connection, reset...
        error = f"{type(e).__name__}: {e}"
    results[i] = {
        "i": i,
        "status": status,
        "latency_ms": round((time.monotonic() - start) * 1000, 1),
        "body": text,
        "error": error,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="endpoint URL, e.g. http://127.0.0.1:PORT/atomic_long_delay/")
    p.add_argument("--requests", type=int, default=8, help="concurrent requests (default 8)")
    p.add_argument("--delay-ms", default="300", help="the delay_ms form field (default 300)")
    p.add_argument("--account", default="1")
    p.add_argument("--amount", default="100")
    p.add_argument("--verbose", action="store_true", help="print every response as JSON")
    a = p.parse_args()

    form = {"account": a.account, "amount": a.amount, "delay_ms": a.delay_ms}
    results = [None] * a.requests
    threads = [
        threading.Thread(target=post, args=(a.url, form, results, i))
        for i in range(a.requests)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    acked = sum(1 for r in results if r["status"] is not None and 200 <= r["status"] < 300)
    if a.verbose:
        for r in results:
            print(json.dumps(r))
    print(f"acked={acked} failed={a.requests - acked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
