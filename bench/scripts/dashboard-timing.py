#!/usr/bin/env python3
"""The dashboard's pages timed in a real browser (the system's Chromium,
through Playwright for Python), for joblog-httpbench (docs/benchmarks.md,
"HTTP"). It signs in with a token, then loads each path given `--rounds`
times and reads the browser's own navigation timing of each load:

- `response`: from the request's start to the last byte of the page
  (the server's work and the transfer);
- `dom`: from the navigation's start to DOMContentLoaded (the grid
  parsed and on screen: the page is server-rendered, no script draws it);
- `load`: from the navigation's start to the load event (styles and
  scripts included).

    python3 bench/scripts/dashboard-timing.py --base http://127.0.0.1:8080 \
        --token TOKEN --rounds 20 /jobs '/jobs?type=workflow&reason=failed'

Prints one JSON object: {"pages": [{"path", "rounds", "response_ms":
{"p50", "p99"}, "dom_ms": …, "load_ms": …, "rows"}]}; exit 1 with the
reason on stderr when the browser cannot run or a page is not the grid.
"""

import argparse
import json
import sys

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return {response: n.responseEnd - n.requestStart,
          dom: n.domContentLoadedEventEnd - n.startTime,
          load: n.loadEventEnd - n.startTime};
}"""


def percentile(values, p):
    # As the Rust harnesses' percentile_us: the value at len * p / 100.
    s = sorted(values)
    return s[min(len(s) * p // 100, len(s) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    base = a.base.rstrip("/")
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.goto(base + "/signin")
        page.fill("#token", a.token)
        page.click("#signin-go")
        page.wait_for_url("**/jobs")
        for path in a.paths:
            series = {"response": [], "dom": [], "load": []}
            rows = 0
            # One load first, not counted: the browser's caches of the
            # styles and scripts warm, as for a user who already has the
            # dashboard open.
            for i in range(a.rounds + 1):
                page.goto(base + path, wait_until="load")
                if page.locator("form#grid").count() != 1:
                    print(f"{path}: not the grid (title {page.title()!r})", file=sys.stderr)
                    return 1
                rows = page.locator("form#grid tbody tr[data-id]").count()
                if i == 0:
                    continue
                t = page.evaluate(TIMING)
                for k in series:
                    series[k].append(t[k])
            out.append(
                {
                    "view": "",
                    "path": path,
                    "rounds": a.rounds,
                    "rows": rows,
                    **{
                        f"{k}_ms": {"p50": percentile(v, 50), "p99": percentile(v, 99)}
                        for k, v in series.items()
                    },
                }
            )
        browser.close()
    print(json.dumps({"pages": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
