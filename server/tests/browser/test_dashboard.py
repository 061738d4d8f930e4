#!/usr/bin/env python3
"""The dashboard driven in a real browser (Chromium from the system's
packages, through Playwright for Python).

Run by server/tests/browser.rs against a server it starts over a seeded
store (what the seed holds is described there); by hand:

    python3 server/tests/browser/test_dashboard.py --base http://127.0.0.1:8080 \
        --token ADMIN_TOKEN --viewer-token READ_ONLY_TOKEN --shots docs/screenshots

Each step prints a line; the first failure stops the run with exit 1.
"""

import argparse
import re
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

# The flags that let the system's Chromium run headless in a container
# without a sandbox, a GPU or any network of its own.
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

passed = 0


def step(name):
    global passed
    passed += 1
    print(f"ok {passed} - {name}", flush=True)


def sign_in(page, base, token):
    page.goto(base + "/jobs")
    # Not signed in: the sign-in page, which comes back to the grid.
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.fill("#token", token)
    page.click("#signin-go")
    expect(page).to_have_url(re.compile(r"/jobs$"))


def rows(page):
    return page.locator("form#grid tbody tr[data-id]")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--token", required=True, help="a token of a user with every privilege")
    ap.add_argument("--viewer-token", required=True, help="a token of a user who may only read")
    ap.add_argument("--shots", required=True, help="where the screenshots go")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    base = a.base.rstrip("/")
    shots = Path(a.shots)
    shots.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=10_000)

    def shot(page, name):
        page.screenshot(path=str(shots / f"{name}.png"))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        page = ctx.new_page()

        # A wrong token is refused, on the sign-in page.
        page.goto(base + "/signin")
        shot(page, "signin")
        page.fill("#token", "not-a-token")
        page.click("#signin-go")
        expect(page.locator("#signin-error")).to_be_visible()
        step("a wrong token does not sign in")

        sign_in(page, base, a.token)
        expect(rows(page)).to_have_count(50)
        expect(page.locator("#counts")).to_contain_text("Waiting For Resources")
        step("signed in with a token: the System Jobs grid, a page of 50, counts per status")

        # The live stream is connected before anything changes.
        expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"))
        shot(page, "system-jobs")

        # Filters: System Job Type and State, then a name search.
        page.select_option("select[name=type]", "10")
        page.select_option("select[name=state]", "0")
        page.click("form#filters button[type=submit]")
        expect(page).to_have_url(re.compile(r"type=10"))
        n = rows(page).count()
        assert n > 0, "no Ready Workflow job"
        for i in range(n):
            cells = rows(page).nth(i).locator("td")
            expect(cells.nth(2)).to_have_text("Workflow")
            expect(cells.nth(3)).to_have_text("Ready")
        step(f"filtered on System Job Type and State: {n} rows, all Ready Workflow jobs")

        page.goto(base + "/jobs?q=invoice+%2310")
        n = rows(page).count()
        assert n > 0, "the name search found nothing"
        for i in range(n):
            expect(rows(page).nth(i).locator("td").nth(1)).to_contain_text("invoice #10")
        step(f"name search: {n} rows, each name contains it")

        # What the store holds is shown as text, never run as markup.
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(base + "/jobs?q=Report")
        expect(rows(page)).to_have_count(1)
        expect(rows(page).first.locator("td").nth(1)).to_have_text("Report <b>Q4</b> <img src=x onerror=alert(1)> & co")
        rows(page).first.locator("td").nth(1).locator("a").click()
        expect(page.locator("#job-name")).to_have_text("Report <b>Q4</b> <img src=x onerror=alert(1)> & co")
        assert page.locator("main img, main b:text('Q4')").count() == 0, "a job's name became markup"
        assert not dialogs, f"a job's name ran as script: {dialogs}"
        step("a job named with markup shows as text, in the grid and on its page")

        # Paging with the engine's cursor: the second page holds other jobs.
        page.goto(base + "/jobs")
        first = set(rows(page).evaluate_all("rs => rs.map(r => r.dataset.id)"))
        page.click("#next")
        second = set(rows(page).evaluate_all("rs => rs.map(r => r.dataset.id)"))
        assert second and not (first & second), "the second page repeats the first"
        step(f"next page: {len(second)} other jobs")

        # A job: every column, its timeline, its attempts.
        page.goto(base + "/jobs?q=Import+contacts")
        page.locator("form#grid tbody a", has_text="Import contacts.csv").click()
        expect(page.locator("#job-name")).to_have_text("Import contacts.csv")
        expect(page.locator("#timeline tbody tr")).to_have_count(7)
        expect(page.locator("#attempts tbody tr")).to_have_count(2)
        expect(page.locator("#attempts")).to_contain_text("timeout reading row 18 (attempt 2)")
        expect(page.locator("p.status")).to_contain_text("Next retry")
        shot(page, "job")
        step("a job: columns, a timeline of 7 lines, 2 attempts with their errors, the next retry")

        # Cancel a job on its page (a second tab) and see the grid change live.
        page.goto(base + "/jobs?type=10&state=0")
        expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"))
        target = rows(page).first
        job_id = target.get_attribute("data-id")
        expect(target.locator("[data-col=state]")).to_have_text("Ready")
        other = ctx.new_page()
        other.goto(f"{base}/jobs/{job_id}")
        other.click("#act-cancel")
        expect(other.locator("#job-state")).to_have_text("Completed")
        expect(other.locator("#job-reason")).to_have_text("Canceled")
        other.close()
        # The grid page was not reloaded: the event stream updated the row.
        expect(target.locator("[data-col=state]")).to_have_text("Completed")
        expect(target.locator("[data-col=reason]")).to_have_text("Canceled")
        step("canceled a job in another tab: its row in the grid changed live")

        # A job created meanwhile (by a script, through the native API): the
        # grid says there is a new one, without reloading.
        expect(page.locator("#newjobs")).to_be_hidden()
        api = p.request.new_context(extra_http_headers={"Authorization": "Bearer " + a.token})
        r = api.post(base + "/api/v1/jobs", data={"name": "Created by a script", "type": "workflow", "external_handler": True})
        assert r.status == 201, f"creating a job through the API answered {r.status}: {r.text()}"
        api.dispose()
        expect(page.locator("#newjobs")).to_be_visible()
        expect(page.locator("#newcount")).to_have_text("1")
        step("a job created through the API: the grid shows “1 new jobs” live")

        # Bulk: two selected rows, a confirmation that says how many.
        page.goto(base + "/jobs?type=10&state=0")
        boxes = page.locator("form#grid tbody input[name=id]")
        boxes.nth(0).check()
        boxes.nth(1).check()
        page.select_option("#bulk-action", "pause")
        page.click("#bulk-go")
        expect(page.locator("#will-change")).to_have_text("0")
        step("pausing two Ready jobs: the confirmation says none would change")
        page.goto(base + "/jobs?type=10&state=0")
        boxes = page.locator("form#grid tbody input[name=id]")
        boxes.nth(0).check()
        boxes.nth(1).check()
        page.select_option("#bulk-action", "cancel")
        page.click("#bulk-go")
        expect(page.locator("#will-change")).to_have_text("2")
        shot(page, "confirm")
        page.click("#confirm-go")
        expect(page.locator("#changed")).to_have_text("2")
        step("canceling two selected rows: confirmed as 2, 2 changed")

        # All matching: postpone every Ready job of one row.
        page.goto(base + "/jobs?regarding=account%3A1&state=0")
        total = rows(page).count()
        page.check("input[name=scope][value=all]")
        page.select_option("#bulk-action", "postpone")
        page.fill("input[name=until]", "2099-01-01T00:00")
        page.click("#bulk-go")
        expect(page.locator("#will-change")).to_have_text(str(total))
        page.click("#confirm-go")
        # A tracked operation: its page reloads itself until it ends.
        expect(page).to_have_url(re.compile(r"/operations/"))
        expect(page.locator("#op-status")).to_have_text("succeeded")
        expect(page.locator("#changed")).to_have_text(str(total))
        shot(page, "operation")
        page.goto(base + "/jobs?regarding=account%3A1&state=0")
        expect(rows(page)).to_have_count(0)
        step(f"all {total} matching jobs postponed by a tracked operation, none Ready any more")

        # Process Session and Background Processes, reached from the grid.
        page.goto(base + "/jobs?type=10")
        page.locator("form#grid tbody a[title='Process Session']").first.click()
        expect(page.locator("h1")).to_contain_text("Process Session: wf-")
        shot(page, "process-session")
        page.goto(base + "/jobs?type=10")
        page.locator("form#grid tbody a[title='Background Processes']").first.click()
        expect(page.locator("h1")).to_contain_text("Background Processes: account:")
        for i in range(rows(page).count()):
            expect(rows(page).nth(i).locator("td").nth(6)).to_contain_text("account:")
        step("Process Session and Background Processes from the grid")

        # Failing workflows: wf-invoice failed 7 times in a row and is held.
        page.goto(base + "/failing")
        row = page.locator("#failing tbody tr", has_text="wf-invoice")
        expect(row.locator("td").nth(1)).to_have_text("7")
        expect(row.locator("td").nth(3)).not_to_contain_text("not held")
        shot(page, "failing")
        step("failing workflows: wf-invoice, 7 failures in a row, held")

        # Bulk deletion: Immediately, from the wizard, while another tab
        # shows the grid.
        watcher = ctx.new_page()
        watcher.goto(base + "/jobs")
        expect(watcher.locator("#live")).to_have_class(re.compile(r"\bon\b"))
        page.goto(base + "/bulk-delete")
        page.check("input[name=when][value=immediately]")
        page.click("#wizard-review")
        expect(page.locator("#match-count")).to_have_text("24")
        page.click("#wizard-go")
        expect(page.locator("#deleted")).to_have_text("24")
        expect(watcher.locator("#deletedcount")).to_have_text("24")
        watcher.close()
        step("bulk deletion Immediately: 24 matching, 24 deleted; the grid in another tab says so live")
        # ... and a recurring Bulk Delete job.
        page.goto(base + "/bulk-delete")
        page.check("input[name=reason][value='31']")
        page.fill("input[name=name]", "Weekly cleanup")
        page.select_option("select[name=freq]", "WEEKLY")
        page.click("#wizard-review")
        expect(page.locator("#match-count")).to_have_text("6")
        page.click("#wizard-go")
        expect(page.locator("#wizard-done")).to_contain_text("Weekly cleanup")
        page.goto(base + "/bulk-delete")
        expect(page.locator("#bulk-deletes tbody tr", has_text="Weekly cleanup")).to_contain_text("FREQ=WEEKLY")
        shot(page, "bulk-delete")
        step("a recurring Bulk Delete job created from the wizard, listed")

        # Bad input is said, and changes nothing.
        page.goto(base + "/bulk-delete")
        page.uncheck("input[name=reason][value='30']")
        page.click("#wizard-review")
        expect(page.locator("#wizard-error")).to_contain_text("Status Reason")
        step("a wizard without a Status Reason is refused with a message")

        page.goto(base + "/overview?days=1")
        expect(page.locator("svg.chart").first).to_be_visible()
        expect(page.locator("#disk")).not_to_have_text("0 B")
        shot(page, "overview")
        step("overview: charts, queue age, log size")

        # Cross-site and forged posts are refused and change nothing.
        r = page.request.post(
            base + "/jobs/act",
            form={"action": "cancel", "scope": "all", "csrf": "x"},
            headers={"Origin": "http://elsewhere.example"},
        )
        assert r.status == 403, f"a cross-site post answered {r.status}"
        r = page.request.post(base + "/jobs/act", form={"action": "cancel", "scope": "all"}, headers={"Origin": base})
        assert r.status == 403, f"a post without the CSRF token answered {r.status}"
        step("a cross-site post and a post without the CSRF token are refused (403)")

        page.goto(base + "/jobs")
        page.click("header .who button")
        expect(page).to_have_url(re.compile(r"/signin$"))
        page.goto(base + "/jobs")
        expect(page).to_have_url(re.compile(r"/signin"))
        step("signed out: the grid asks to sign in again")
        ctx.close()

        # A user who may only read: no action anywhere.
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        sign_in(page, base, a.viewer_token)
        assert rows(page).count() > 0, "the read-only user sees no job"
        expect(page.locator("#bulk-action")).to_have_count(0)
        expect(page.locator("form#grid input[type=checkbox]")).to_have_count(0)
        expect(page.locator("header .who")).to_contain_text("read only")
        rows(page).first.locator("a").first.click()
        expect(page.locator("#job-name")).to_be_visible()
        expect(page.locator("#job-actions")).to_have_count(0)
        page.goto(base + "/bulk-delete")
        expect(page.locator("#wizard")).to_have_count(0)
        step("a read-only user sees jobs and no action buttons")
        ctx.close()
        browser.close()
    print(f"{passed} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a failed expectation or a broken page: say which
        print(f"not ok {passed + 1} - {type(e).__name__}: {e}", file=sys.stderr)
        print(f"{passed} passed, 1 failed")
        sys.exit(1)
