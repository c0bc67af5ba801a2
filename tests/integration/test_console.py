"""The web console in a real browser: Debian's headless Chromium driven by Selenium through Debian's
chromedriver (both by path: nothing is downloaded), against `backfill serve`, real workers and a sink.

One user's afternoon, in order: sign in; drop a file whose time column is wrong, see its cells marked,
skip it and map the right one, dry-run (the trigger preview), import, watch the progress bar reach the
end, read the report and its pictures, download the errors file (the same bytes as `backfill errors`);
cancel a running import, retry it with a corrected file, undo the retry. Then a read key: no import button, and the
import endpoint refuses it (403) even when the page's own script calls it. The run makes the README's
screenshots (docs/console/*.png).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from worker.events.rules import Campaign

from .test_http import Service

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1000")
SHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "backfill-console-shots")
WAIT_S = 30


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium; its downloads land in a folder of the test's."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"the web console's browser tests need {' and '.join(missing)}: install Debian's packages "
                    "with `apt-get install chromium chromium-driver`")
    os.environ["SE_OFFLINE"] = "true"  # (Selenium Manager: never fetch a browser or a driver)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # (the page's console, read by the tests)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver, downloads
    driver.quit()


@pytest.fixture(scope="module")
def site(redis_url, workers, tmp_path_factory):
    """`backfill serve` and a sink (the import page's event figures read the results database)."""
    # A home of their own, shared by the two: the sink's SQLite results database is the one the service
    # reads, and no later test finds this module's people in it (`backfill people show` reads it first).
    home = tmp_path_factory.mktemp("console-home")
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
    log = (home / "console-sink.log").open("wb")
    sink = subprocess.Popen([exe, "sink"], env={**os.environ, "BACKFILL_HOME": str(home)}, stdout=log,
                            stderr=subprocess.STDOUT)
    running = Service(home)
    yield running, home
    running.stop()
    sink.terminate()
    sink.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def user(site, redis_url):
    """The keys of the afternoon (made once: the sign-ins outlive one test) and a campaign."""
    from producers.api import default_context

    store = default_context().store
    store.triggers.add_campaign(Campaign("order follow-up", "Order placed", 3600))
    return {"import": store.apikeys.create("console user", "import")[1],
            "read": store.apikeys.create("console viewer", "read")[1]}


def until(what, timeout: float = WAIT_S, every: float = 0.1, *, show=None):
    """``what()`` once it is truthy (a few tries, as a person would look again); ``show()`` says what
    was there instead when it never is."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = what()
        except Exception:  # (an element replaced while read: look again)
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s" + (f": {show()}" if show else ""))
        time.sleep(every)


def css(driver, selector: str):
    return driver.find_element("css selector", selector)


def all_css(driver, selector: str):
    return driver.find_elements("css selector", selector)


def sign_in(driver, url: str, key: str) -> None:
    driver.delete_all_cookies()
    driver.get(url + "/")
    until(lambda: driver.current_url.endswith("/signin"))
    from selenium.webdriver.common.keys import Keys

    css(driver, "#key").send_keys(key + Keys.ENTER)  # from the keyboard
    until(lambda: css(driver, "h1").text == "Imports", show=lambda: driver.current_url + driver.page_source[-1500:])


def open_in_wizard(driver, url: str, path: Path, text: str | None = None) -> None:
    """The wizard at /new with ``path`` chosen as its file (written first when ``text`` is given)."""
    if text is not None:
        path.write_text(text)
    driver.get(url + "/new")
    css(driver, "#file").send_keys(str(path))


def wizard_file(path: Path, rows: int) -> Path:
    """Events whose ``time`` column is wrong in its first rows and whose ``purchased_at`` is right; a few
    e-mails wrong further on (errors to download)."""
    lines = ["email,event_name,time,purchased_at",
             "ann@example.com,Order placed,last tuesday,2024-03-01T10:00:00Z",
             "bob@example.com,Order placed,31/02/2024,2024-03-02T11:30:00Z",
             "cy@example.com,Order placed,soon,2024-03-03T09:15:00Z"]
    for n in range(rows - 3):
        email = f"user{n}@example" if (n + 1) % 700 == 0 else f"user{n}@example.com"
        lines.append(f"{email},{'Refund' if n % 5 == 0 else 'Order placed'},2024-03-01,2024-03-{1 + n % 28:02d}T{n % 24:02d}:00:00Z")
    path.write_text("\n".join(lines) + "\n")
    return path


def screenshot(driver, name: str) -> None:
    """The whole page (up to 2,600 px tall) into SHOTS (docs/console/ for the README's pictures)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(height + 140, 2600))
    time.sleep(0.3)
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / name))
    driver.set_window_size(1280, 1000)


def choose(select, value: str) -> None:
    from selenium.webdriver.support.select import Select

    Select(select).select_by_value(value)


def column_row(driver, name: str):
    return next(r for r in all_css(driver, "#columns tbody tr") if css(r, "th").text == name)


def test_an_import_from_the_browser_end_to_end(browser, site, user, tmp_path):
    driver, downloads = browser
    service, _ = site
    started = time.monotonic()
    sign_in(driver, service.url, user["import"])
    css(driver, "#new-import").click()
    until(lambda: css(driver, "h1").text == "New import")

    # drop the file (a file input is what a drop fills): inspect's reading, the bad cells marked
    css(driver, "#file").send_keys(str(wizard_file(tmp_path / "orders.csv", 3000)))
    until(lambda: len(all_css(driver, "#sample td.bad-cell")) == 3, show=lambda: css(driver, "main").text)
    marked = [cell.text for cell in all_css(driver, "#sample td.bad-cell")]
    assert marked == ["last tuesday", "31/02/2024", "soon"]
    problems = css(driver, "#sample tbody").text
    assert "invalid_time" in problems and "it reads as day/month" in problems
    facts = css(driver, "#read-facts").text
    assert "utf-8" in facts and "vero" in facts and "3,000" in facts
    assert column_row(driver, "time").find_elements("css selector", "td")[0].text == "time"
    screenshot(driver, "wizard.png")

    # skip the wrong column, map the right one: the sample is read again at once, clean
    choose(css(column_row(driver, "time"), "select"), "__skip")
    # (a file with no time column but one named like one is refused: the refusal says how to map it)
    refusal = until(lambda: css(driver, "#refusal").is_displayed() and css(driver, "#refusal").text)
    assert "purchased_at" in refusal
    choose(css(column_row(driver, "purchased_at"), "select"), "time")
    until(lambda: column_row(driver, "purchased_at").find_elements("css selector", "td")[0].text == "time")
    until(lambda: not all_css(driver, "#sample td.bad-cell"))
    css(driver, "#opt-trigger").click()
    css(driver, "#opt-trigger-window").clear()
    css(driver, "#opt-trigger-window").send_keys("none")
    css(driver, "#opt-create-people").click()
    time.sleep(0.5)  # (the options' re-read settles)

    # a dry run: the trigger preview, nothing written
    css(driver, "#dry-run").click()
    until(lambda: css(driver, "#preview").is_displayed())
    preview = {row.get_attribute("data-kind"): row.text for row in all_css(driver, "#preview-triggers tr")}
    assert set(preview) & {"sent_now", "discarded", "scheduled"}, preview
    [campaign] = all_css(driver, "#preview-campaigns tbody tr")  # the same decisions, per campaign
    assert campaign.get_attribute("data-campaign") == "order follow-up"
    assert {cell.get_attribute("data-kind") for cell in all_css(campaign, "td")} == \
        set(preview) & {"sent_now", "scheduled", "discarded"}
    assert "nothing was written" in css(driver, "#go-status").text

    # the import: its page, the progress bar to the end, then the report
    css(driver, "#start-import").click()
    until(lambda: "/imports/" in driver.current_url)
    import_id = driver.current_url.rsplit("/", 1)[1]
    seen_max = until(lambda: css(driver, "#progress").get_attribute("max") == "3000" and "3000")
    assert seen_max
    until(lambda: css(driver, "#report").is_displayed())
    assert css(driver, "#progress").get_attribute("value") == "3000"
    report = css(driver, "#report").text
    assert f"import {import_id}: completed_with_errors" in report and "rows              3000" in report
    assert "errors            4" in report
    headings = [h.text for h in all_css(driver, "figcaption h3")]
    # (decisions by campaign from the report: there before a sink stores a single event)
    assert {"Rows by outcome", "Errors by code", "Trigger decisions", "Trigger decisions by campaign"} <= set(headings)
    until(lambda: (driver.refresh() or "Events over time" in css(driver, ".figures").text), every=0.5,
          show=lambda: css(driver, ".figures").text + (site[1] / "console-sink.log").read_text()[-2000:])
    screenshot(driver, "import.png")

    # an error code's rows
    driver.find_element("link text", "invalid_email").click()
    until(lambda: "invalid_email" in css(driver, "h1").text)
    assert len(all_css(driver, "#error-rows tbody tr")) == 4
    driver.back()

    # the errors file: the same bytes as `backfill errors`
    css(driver, "#download-errors").click()
    got = downloads / f"{import_id}-errors.csv"
    until(lambda: got.exists() and got.stat().st_size > 0)
    cli = tmp_path / "cli-errors.csv"
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
    # (the CLI as an operator runs it; not the `backfill` fixture, whose store fixture empties Redis first)
    assert subprocess.run([exe, "errors", import_id, "-o", str(cli)], env={**os.environ}, timeout=60).returncode == 0
    assert got.read_bytes() == cli.read_bytes()

    # the list: newest first, this import's row
    driver.get(service.url + "/")
    row = until(lambda: css(driver, f'tr[data-import="{import_id}"]'))
    assert "orders.csv" in row.text and "completed_with_errors" in row.text
    print(f"browser: wizard to errors file in {time.monotonic() - started:.1f} s")


def test_cancel_a_running_import_then_retry_it(browser, site, user, tmp_path):
    driver, _ = browser
    service, _ = site
    rows = "".join(f"p{n}@example.com,Viewed,2024-01-01T00:00:{n % 60:02d}Z\n" for n in range(40_000))
    with service.client(user["import"]) as script:
        answer = script.post("/v1/imports", files={"file": ("big.csv", ("email,event_name,time\n" + rows).encode())},
                             data={"create_people": "true"})
        assert answer.status_code == 202
    import_id = answer.json()["import_id"]
    sign_in(driver, service.url, user["import"])
    driver.get(f"{service.url}/imports/{import_id}")
    from selenium.webdriver.common.keys import Keys

    cancel = until(lambda: css(driver, "#cancel"))
    cancel.send_keys(Keys.ENTER)  # a real button: the keyboard presses it
    alert = driver.switch_to.alert
    assert import_id in alert.text
    alert.accept()
    until(lambda: css(driver, "#status").text == "cancelled")
    until(lambda: css(driver, "#report").is_displayed())
    assert "skipped" in css(driver, "#report").text or "not queued" in css(driver, "#report").text

    corrected = tmp_path / "corrected.csv"
    corrected.write_text("email,event_name,time\nfixed@example.com,Viewed,2024-01-01T00:00:00Z\n")
    css(driver, "#retry-file").send_keys(str(corrected))
    css(driver, "#retry").click()
    driver.switch_to.alert.accept()
    until(lambda: "/imports/" in driver.current_url and not driver.current_url.endswith(import_id))
    retry_id = driver.current_url.rsplit("/", 1)[1]
    until(lambda: css(driver, "#report").is_displayed())
    assert driver.find_element("link text", import_id)  # "Retry of" links back
    css(driver, "#undo").click()  # and the retry taken back, confirmed first
    driver.switch_to.alert.accept()
    until(lambda: "Undone" in css(driver, ".facts").text and not all_css(driver, "#undo"))
    driver.get(f"{service.url}/imports/{import_id}")
    assert driver.find_element("link text", retry_id)


def test_a_read_key_sees_no_import_button_and_is_refused_the_endpoint(browser, site, user):
    driver, _ = browser
    service, _ = site
    sign_in(driver, service.url, user["read"])
    assert not all_css(driver, "#new-import")
    row = until(lambda: all_css(driver, "#imports tbody tr[data-import]"))
    row[0].find_element("css selector", "a").click()
    until(lambda: css(driver, "#report"))
    assert not all_css(driver, "#cancel, #undo, #retry")
    status = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        fetch('/v1/imports', {method: 'POST', headers: {'X-CSRF-Token': csrf, 'Content-Type': 'application/json'},
              body: JSON.stringify({upload_id: 'x'})}).then(r => r.json().then(b => done([r.status, b.error.code])));
    """)
    assert status == [403, "forbidden"]


def test_readable_at_360_px(browser, site, user):
    driver, _ = browser
    service, _ = site
    sign_in(driver, service.url, user["import"])
    driver.set_window_size(360, 800)
    try:
        for path in ("/", "/new"):
            driver.get(service.url + path)
            until(lambda: css(driver, "h1"))
            width = driver.execute_script("return document.documentElement.scrollWidth")
            assert width <= 360, (path, width)
    finally:
        driver.set_window_size(1280, 1000)
    with httpx.Client(base_url=service.url) as anonymous:  # no script or style from elsewhere
        page = anonymous.get("/signin").text
        assert "http://" not in page and "https://" not in page


def test_the_wizard_settles_a_refused_header_and_offers_no_dry_run_of_segment_files(browser, site, user, tmp_path):
    """A file whose header is refused (no person column) shows its columns to map, and mapping them reads
    it again; a file of Segment messages offers no dry run (the API refuses one); and no page of the
    console writes an error into the browser's console meanwhile."""
    driver, _ = browser
    service, _ = site
    sign_in(driver, service.url, user["import"])
    driver.get_log("browser")  # (what earlier tests left)
    open_in_wizard(driver, service.url, tmp_path / "crm.csv",
                   "Mail,Action,time\nann@example.com,Order placed,2024-03-01T10:00:00Z\n")
    until(lambda: "no_person_column" in css(driver, "#refusal").text, show=lambda: css(driver, "main").text)
    assert css(driver, "#step-go").get_attribute("hidden") is not None
    choose(css(column_row(driver, "Mail"), "select"), "email")
    until(lambda: "no_event_name_column" in css(driver, "#refusal").text, show=lambda: css(driver, "main").text)
    choose(css(column_row(driver, "Action"), "select"), "event_name")
    until(lambda: css(driver, "#refusal").get_attribute("hidden") is not None and
          len(all_css(driver, "#sample tbody tr")) == 1, show=lambda: css(driver, "main").text)
    assert css(driver, "#dry-run").is_enabled()

    open_in_wizard(driver, service.url, tmp_path / "segment.ndjson",
                   '{"type":"track","userId":"u1","event":"Signed Up","messageId":"m1",'
                   '"timestamp":"2024-01-01T00:00:00Z"}\n')
    until(lambda: css(driver, "#step-go").get_attribute("hidden") is None, show=lambda: css(driver, "main").text)
    assert not css(driver, "#dry-run").is_enabled() and "Segment" in css(driver, "#go-note").text
    assert css(driver, "#start-import").is_enabled()

    for path in ("/", "/new", "/signin"):
        driver.get(service.url + path)
        until(lambda: css(driver, "h1"))
        time.sleep(0.5)
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_the_list_keeps_the_keyboard_place_while_it_refreshes(browser, site, user):
    """The imports list is drawn again every second; a link reached with Tab stays focused through it, so
    the next Tab goes on from there (it went back to the top of the page)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver, _ = browser
    service, _ = site
    with service.client(user["import"]) as api:
        for name in ("first.csv", "second.csv"):
            api.post("/v1/imports", files={"file": (name, b"email,event_name\nann@example.com,Order placed\n")},
                     data={"create_people": "true"}).raise_for_status()
    sign_in(driver, service.url, user["import"])
    until(lambda: len(all_css(driver, "#imports tbody tr[data-import]")) >= 2)
    for _ in range(40):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        if driver.execute_script("return document.activeElement.closest('#imports tbody') !== null"):
            break
    focused = driver.execute_script("return document.activeElement.getAttribute('href')")
    assert focused and focused.startswith("/imports/")
    time.sleep(2.5)  # (two refreshes)
    assert driver.execute_script("return document.activeElement.getAttribute('href')") == focused
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.execute_script("return document.activeElement.closest('#imports tbody') !== null")


def test_the_wizard_shows_the_latest_reading_not_the_slowest(browser, site, user, tmp_path):
    """Each change of the options reads the file again; when an earlier reading comes back after a later
    one (a slow scan), the page shows the later one: the options as they are now."""
    driver, _ = browser
    service, _ = site
    sign_in(driver, service.url, user["import"])
    open_in_wizard(driver, service.url, tmp_path / "people_or_events.csv",
                   "email,event_name\nann@example.com,Order placed\n")
    until(lambda: "vero" in css(driver, "#read-facts").text, show=lambda: css(driver, "main").text)
    # the network makes the next reading (as events, Europe/Paris) slow: it comes back after the one that follows
    driver.execute_script("""
      const real = window.fetch;
      window.fetch = (url, init) => {
        const slow = String(url).endsWith('/inspect') && init && String(init.body).includes('Europe/Paris') &&
          String(init.body).includes('"type":"events"');
        return slow ? new Promise((done) => setTimeout(() => done(real(url, init)), 2500)) : real(url, init);
      };""")
    timezone = css(driver, "#opt-timezone")
    timezone.clear()
    timezone.send_keys("Europe/Paris")
    time.sleep(0.6)  # (the slow reading is asked)
    css(driver, "#opt-create-people").click()  # (an events option: a people file is read without it)
    choose(css(driver, "#opt-type"), "people")
    until(lambda: "people" in css(driver, "#read-facts").text, show=lambda: css(driver, "main").text)
    time.sleep(3)  # (the slow one has come back)
    assert "people" in css(driver, "#read-facts").text and "vero" not in css(driver, "#read-facts").text
    assert css(driver, "#refusal").get_attribute("hidden") is not None
    assert not css(driver, "#opt-create-people").is_enabled() and not css(driver, "#opt-trigger").is_enabled()


def test_a_double_click_on_import_starts_one_import(browser, site, user, tmp_path):
    """The wizard's Import (and Dry run) buttons take one click at a time: a double click sent two POST
    /v1/imports, two imports of the same file."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver, _ = browser
    service, _ = site
    sign_in(driver, service.url, user["import"])
    open_in_wizard(driver, service.url, tmp_path / "twice.csv", "email,event_name\nann@example.com,Order placed\n")
    until(lambda: css(driver, "#step-go").get_attribute("hidden") is None, show=lambda: css(driver, "main").text)
    ActionChains(driver).double_click(css(driver, "#start-import")).perform()
    until(lambda: "/imports/" in driver.current_url)
    time.sleep(1)
    with service.client(user["import"]) as api:
        listed = api.get("/v1/imports", params={"limit": 100}).json()["imports"]
    assert [item["source"] for item in listed].count("twice.csv") == 1


def test_the_wizard_deletes_the_uploads_it_no_longer_needs(browser, site, user, tmp_path):
    """The service keeps BACKFILL_API_STAGED_MAX uploads for everybody: the wizard's upload of a file
    replaced by another, or of a page left, is deleted (each stayed an hour: 100 files dropped filled the
    service for every user); an import started from it goes on to its end."""
    driver, _ = browser
    service, home = site

    def staged() -> int:
        return len(list((home / "uploads").glob("*.staged.json")))

    held = staged()
    sign_in(driver, service.url, user["import"])
    driver.get(service.url + "/new")
    for name in ("first.csv", "second.csv"):
        path = tmp_path / name
        path.write_text("email,event_name\nann@example.com,Order placed\n")
        css(driver, "#file").send_keys(str(path))
        until(lambda name=name: f"{name}: " in css(driver, "#upload-status").text)
        until(lambda: css(driver, "#step-go").get_attribute("hidden") is None)
    until(lambda: staged() == held + 1, timeout=5, show=lambda: f"{staged()} staged, {held} before")
    css(driver, "#start-import").click()
    until(lambda: "/imports/" in driver.current_url)
    until(lambda: staged() == held, timeout=5, show=lambda: f"{staged()} staged, {held} before")
    until(lambda: css(driver, "#status").text in ("completed", "completed_with_errors"),
          show=lambda: css(driver, "main").text)


def test_long_names_stay_within_360_px(browser, site, user):
    """A file name or an event name with no space in it (a 300-character export name) wrapped nowhere: an
    import's page was 2,700 px wide on a phone. Tables scroll in their own box; the page does not."""
    driver, _ = browser
    service, _ = site
    name = "customer_export_" * 20 + ".csv"
    with service.client(user["import"]) as api:
        started = api.post("/v1/imports", data={"create_people": "true"}, files={"file": (
            name, b"email,event_name\nann@example.com," + b"E" * 300 + b"\nbad,x\n")}).json()["import_id"]
    sign_in(driver, service.url, user["import"])
    driver.set_window_size(360, 800)
    try:
        for path in ("/", f"/imports/{started}", f"/imports/{started}/errors"):
            driver.get(service.url + path)
            until(lambda: css(driver, "h1"))
            time.sleep(1.5)  # (the list is drawn by its script; the import ends meanwhile)
            width = driver.execute_script("return document.documentElement.scrollWidth")
            assert width <= 360, (path, width)
    finally:
        driver.set_window_size(1280, 1000)
