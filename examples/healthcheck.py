"""A tiny tool of "yours" to test against a lab: checks that a URL answers 200 in time."""

import sys
import time
import urllib.request

url = sys.argv[1]
start = time.monotonic()
with urllib.request.urlopen(url, timeout=5) as response:
    ok = response.status == 200
print(f"{url}: {'ok' if ok else 'bad'} in {(time.monotonic() - start) * 1000:.1f} ms")
sys.exit(0 if ok else 1)
