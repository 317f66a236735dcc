#!/usr/bin/env python3
"""The control panel in a real headless Chromium, against the local runner.

For one backend (memory, or aws on a moto server this script starts) it starts the runner
and a receiver on loopback, opens GET /webhooks/panel, signs in with the development token
the runner's page offers, and through the page alone: creates a subscription to the
receiver with a generated secret (shown once), sees an API error next to its field, sees
the delivery of a published event in the log (the event is published through the API with
the runner's publish-scoped token; the receiver checks the signature with the secret the
page showed), pauses and resumes, resends the delivery (the receiver gets the same
webhook-id again), dispatches a test, pages the log with _cursor, rotates the secret,
edits the receiver settings (own headers and a retry schedule: a refusal next to its
field, values masked on the card and kept when left masked, exact values at the
receiver, then both removed; an OAuth2 client whose secret is never shown and kept when
left empty, its token sent on dispatch, then removed),
checks that every field is labelled and that buttons work from the keyboard, sees
recover's refusal next to its field and then its answer for a window, checks the page
fits a phone-width window, and deletes the subscription. Every wait is for a condition, bounded only so that a broken
page fails instead of hanging.

Run it inside a network namespace with only loopback (panel-test.sh does), so that neither
Chromium nor the platform reaches anything else.
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

# How long a condition may take before the test gives up: a bound against hanging, not an
# assertion about speed.
PATIENCE = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A webhook receiver on loopback that records every request."""

    def __init__(self, body=b"thanks from the receiver", content_type="text/plain"):
        self.requests = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                received.append((dict(self.headers.items()), self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def wait_http(url, process, log_path):
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{url}: the process ended; its log:\n{open(log_path).read()}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer")


def verifies(secret, headers, body):
    """Standard Webhooks: v1 = base64 HMAC-SHA256 of id.timestamp.body, keyed by the
    bytes that whsec_ + base64 names."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return f"v1,{expected}" in headers["webhook-signature"].split(" ")


def browser(screen):
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        f"--window-size={screen[0]},{screen[1]}",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def run(args):
    work = tempfile.mkdtemp(prefix=f"panel-{args.backend}-")
    processes = []
    env = dict(os.environ)
    env.update(
        PORT=str(free_port()),
        WEBHOOKS_BACKEND=args.backend,
        WEBHOOKS_LOCAL_VISIBILITY_SECS="5",
        RUST_LOG="warn",
    )
    if args.backend == "aws":
        moto_port = free_port()
        moto_log = os.path.join(work, "moto.log")
        moto = subprocess.Popen(
            [args.moto, "-H", "127.0.0.1", "-p", str(moto_port)],
            stdout=open(moto_log, "w"),
            stderr=subprocess.STDOUT,
        )
        processes.append(moto)
        wait_http(f"http://127.0.0.1:{moto_port}/moto-api/", moto, moto_log)
        suffix = str(os.getpid())
        env.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}",
            AWS_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_EC2_METADATA_DISABLED="true",
            WEBHOOKS_SUBSCRIPTIONS_TABLE=f"panel-subs-{suffix}",
            WEBHOOKS_IDEMPOTENCY_TABLE=f"panel-idem-{suffix}",
            WEBHOOKS_DELIVERY_LOG_TABLE=f"panel-log-{suffix}",
            WEBHOOKS_QUEUE_PREFIX=f"panel-{suffix}",
        )
    runner_log = os.path.join(work, "runner.log")
    runner = subprocess.Popen(
        [args.bin], env=env, stdout=open(runner_log, "w"), stderr=subprocess.STDOUT
    )
    processes.append(runner)
    base = f"http://127.0.0.1:{env['PORT']}"
    receiver = Receiver()
    driver = None
    try:
        wait_http(f"{base}/api/v0/webhooks/openapi.json", runner, runner_log)
        publisher = subprocess.run(
            [args.bin, "token"], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        driver = browser((1100, 1500))
        scenario(driver, base, receiver, publisher, args)
        print(f"panel test ({args.backend} backend): passed")
    except BaseException:
        if driver is not None:
            failed = os.path.join(work, "failure.png")
            driver.save_screenshot(failed)
            print(f"screenshot of the failure: {failed}", file=sys.stderr)
        print(f"runner log:\n{open(runner_log).read()[-4000:]}", file=sys.stderr)
        raise
    finally:
        if driver is not None:
            driver.quit()
        receiver.stop()
        for p in reversed(processes):
            p.terminate()
            p.wait()


def api(base, token, method, path, body=None):
    """Calls the API directly (as a product or a script would), answering the envelope."""
    req = urllib.request.Request(
        f"{base}/api/v0/webhooks{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return json.load(urllib.request.urlopen(req))


def scenario(driver, base, receiver, publisher, args):
    wait = WebDriverWait(driver, PATIENCE, ignored_exceptions=[StaleElementReferenceException])
    by_id = lambda i: driver.find_element(By.ID, i)  # noqa: E731

    def text_of(element_id, contains):
        wait.until(lambda d: contains in d.find_element(By.ID, element_id).text)
        return by_id(element_id).text

    driver.get(f"{base}/webhooks/panel")
    # The policy lets the page's own style and script run (by hash) and blocks nothing.
    header = driver.execute_script(
        "return getComputedStyle(document.querySelector('header')).backgroundColor")
    assert header == "rgb(27, 31, 36)", f"the page's style did not apply: {header}"
    violations = [e for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert violations == [], violations
    # Signed out, the page asks for a token; the runner's page offers its own.
    assert by_id("sign-in").is_displayed() and not by_id("app").is_displayed()
    by_id("dev-token").click()
    wait.until(lambda d: d.find_element(By.ID, "app").is_displayed())
    wait.until(lambda d: len(Select(d.find_element(By.ID, "create-event")).options) > 0)
    text_of("subs-status", "No subscriptions yet")

    # The API's own sentence appears next to the field it is about.
    Select(by_id("create-event")).select_by_value("assign_task")
    by_id("create-url").send_keys("ftp://example.com/x")
    by_id("create-form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    text_of("create-url-error", "trigger_url must be")
    assert by_id("create-url").get_attribute("aria-invalid") == "true"

    # Create, with a generated secret shown once.
    by_id("create-url").clear()
    by_id("create-url").send_keys(receiver.url)
    Select(by_id("create-content-type")).select_by_value("application/json")
    by_id("create-form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    card = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "li.sub[data-subscription]"))
    sub_id = card.get_attribute("data-subscription")
    secret = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-secret]")).text
    assert secret.startswith("whsec_"), secret
    assert by_id("create-url-error").text == ""

    def card_button(label):
        return driver.find_element(
            By.XPATH,
            f"//li[@data-subscription='{sub_id}']//button[normalize-space()='{label}']",
        )

    def state():
        # Read in one script: the card is rendered anew after every change.
        return driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e && e.dataset.state;",
            f"li[data-subscription='{sub_id}'] [data-state]",
        )

    assert state() == "active"

    # An event published through the API reaches the receiver and the log.
    event = {
        "event_id": "assign_task",
        "object_id": 42,
        "resource_url": "https://hq.example.com/api/v0/tasks/42",
        "visible_to": [1],
    }
    answer = api(base, publisher, "POST", "/events", event)
    assert answer["response"]["accepted"] == 1, answer

    card_button("Deliveries").click()
    wait.until(lambda d: d.find_element(By.ID, "log").is_displayed())

    def delivered_row(d):
        rows = d.find_elements(By.CSS_SELECTOR, "#log-rows tr[data-outcome=delivered]")
        if rows:
            return rows[0]
        d.find_element(By.ID, "log-refresh").click()
        return False

    row = wait.until(delivered_row)
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == "assign_task #42" and cells[4] == "200", cells
    assert cells[5].endswith(" ms"), cells
    delivery_id = row.get_attribute("data-delivery")
    headers, body = receiver.requests[0]
    assert headers["webhook-id"] == delivery_id, (headers, delivery_id)
    assert json.loads(body) == {"id": 42, "resource_url": event["resource_url"]}, body
    assert verifies(secret, headers, body), "the secret the page showed signs deliveries"

    # Pause and resume.
    card_button("Pause").click()
    wait.until(lambda d: state() == "paused")
    card_button("Resume").click()
    wait.until(lambda d: state() == "active")

    # Resend: the receiver gets the same delivery again.
    row = driver.find_element(By.CSS_SELECTOR, f"#log-rows tr[data-delivery='{delivery_id}']")
    row.find_element(By.XPATH, ".//button[normalize-space()='Resend']").click()
    wait.until(lambda d: "Queued again." in d.find_element(
        By.CSS_SELECTOR, f"#log-rows tr[data-delivery='{delivery_id}']").text)
    wait.until(lambda d: len(receiver.requests) >= 2)
    assert receiver.requests[1][0]["webhook-id"] == delivery_id

    # Dispatch a test object synchronously.
    by_id("dispatch-object").clear()
    by_id("dispatch-object").send_keys("7")
    by_id("dispatch-form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    text_of("dispatch-result", "The receiver answered 200")
    wait.until(lambda d: d.find_elements(By.XPATH, "//tbody[@id='log-rows']/tr[td[2]='assign_task #7']"))

    # Recover refuses a window without a start, next to the field.
    by_id("recover-form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.find_element(By.ID, "recover-since-error").text
               or d.find_element(By.ID, "recover-error").text)

    if args.screenshot:
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(args.screenshot)

    # A window that starts an hour ago: nothing failed, so nothing is queued.
    driver.execute_script(
        """const d = new Date(Date.now() - 3600 * 1000);
           const pad = (n) => String(n).padStart(2, "0");
           document.getElementById("recover-since").value =
             `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;""")
    by_id("recover-form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    text_of("recover-result", "Queued 0 deliveries again.")
    assert by_id("recover-since-error").text == "" and by_id("recover-error").text == ""

    # Paged with _cursor: more than a page of attempts shows Older, then Newer.
    for n in range(9):
        api(base, publisher, "POST", f"/subscriptions/{sub_id}/dispatch", {"object_id": 100 + n})
    by_id("log-refresh").click()
    wait.until(lambda d: d.find_element(By.ID, "log-older").is_displayed())
    assert len(driver.find_elements(By.CSS_SELECTOR, "#log-rows tr")) == 10
    by_id("log-older").click()
    text_of("log-status", "Page 2")
    assert by_id("log-newer").is_displayed() and not by_id("log-older").is_displayed()
    by_id("log-newer").click()
    text_of("log-status", "Page 1")

    # Rotating shows a new generated secret, once.
    card_button("Rotate secret").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-secret]").text not in ("", secret))
    rotated = driver.find_element(By.CSS_SELECTOR, "[data-secret]").text
    assert rotated.startswith("whsec_") and rotated != secret

    # Receiver settings: headers and a retry schedule, edited on the card.
    def settings():
        return driver.find_element(By.CSS_SELECTOR, f"li[data-subscription='{sub_id}'] form[data-settings]")

    def open_settings():
        card_button("Receiver settings").click()
        wait.until(lambda d: settings().is_displayed())

    def header_row(n):
        return settings().find_elements(By.CSS_SELECTOR, "[data-header-row]")[n]

    def card_text(selector):
        return driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e && e.textContent;",
            f"li[data-subscription='{sub_id}'] {selector}")

    open_settings()
    for n, (name, value) in enumerate([("Host", "nope"), ("X-Plain", "plain-1")]):
        settings().find_element(By.XPATH, ".//button[normalize-space()='Add a header']").click()
        header_row(n).find_element(By.CSS_SELECTOR, "[data-header-name]").send_keys(name)
        header_row(n).find_element(By.CSS_SELECTOR, "[data-header-value]").send_keys(value)
    settings().find_element(By.CSS_SELECTOR, "[data-retry-schedule-input]").send_keys("1, 3")
    settings().find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    text_of(f"headers-error-{sub_id}", "headers: `Host` cannot be set")
    name = header_row(0).find_element(By.CSS_SELECTOR, "[data-header-name]")
    name.clear()
    name.send_keys("X-Api-Key")
    value = header_row(0).find_element(By.CSS_SELECTOR, "[data-header-value]")
    value.clear()
    value.send_keys("key-panel-1")
    settings().find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    text_of(f"note-{sub_id}", "Receiver settings saved.")
    assert card_text("[data-headers]") == "X-Api-Key: ********X-Plain: plain-1", card_text("[data-headers]")
    assert card_text("[data-retry-schedule]") == "1 s, 3 s", card_text("[data-retry-schedule]")
    assert "key-panel-1" not in driver.page_source
    # Edited again: the masked value is left as shown, the other changed.
    open_settings()
    assert header_row(0).find_element(By.CSS_SELECTOR, "[data-header-value]").get_attribute("value") == "********"
    plain = header_row(1).find_element(By.CSS_SELECTOR, "[data-header-value]")
    plain.clear()
    plain.send_keys("plain-2")
    settings().find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: card_text("[data-headers]") == "X-Api-Key: ********X-Plain: plain-2")
    seen = len(receiver.requests)
    api(base, publisher, "POST", f"/subscriptions/{sub_id}/dispatch", {"object_id": 500})
    wait.until(lambda d: len(receiver.requests) > seen)
    sent = receiver.requests[-1][0]
    assert sent.get("x-api-key") == "key-panel-1" and sent.get("x-plain") == "plain-2", sent
    stored = api(base, publisher, "GET", f"/subscriptions/{sub_id}")["response"]["subscription"]
    assert stored["retry_schedule"] == [1, 3], stored
    # A rate limit: a refused one is explained under its field, then 5 a second is kept.
    open_settings()
    rate = settings().find_element(By.CSS_SELECTOR, "[data-rate-limit-input]")
    rate.send_keys("0")
    settings().find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    text_of(f"rate-error-{sub_id}", "rate_limit must be a whole number of deliveries per second")
    rate.clear()
    rate.send_keys("5")
    settings().find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: card_text("[data-rate-limit]") == "5 deliveries a second")
    stored = api(base, publisher, "GET", f"/subscriptions/{sub_id}")["response"]["subscription"]
    assert stored["rate_limit"] == 5 and stored["retry_schedule"] == [1, 3], stored
    # All removed: no header rows, an empty schedule, no rate limit.
    open_settings()
    for _ in range(2):
        header_row(0).find_element(By.XPATH, ".//button[normalize-space()='Remove']").click()
    settings().find_element(By.CSS_SELECTOR, "[data-retry-schedule-input]").clear()
    settings().find_element(By.CSS_SELECTOR, "[data-rate-limit-input]").clear()
    settings().find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: card_text("[data-retry-schedule]") == "the installation's")
    assert card_text("[data-headers]") == "none of its own"
    assert card_text("[data-rate-limit]") == "none"
    stored = api(base, publisher, "GET", f"/subscriptions/{sub_id}")["response"]["subscription"]
    assert "headers" not in stored and "retry_schedule" not in stored and "rate_limit" not in stored, stored

    # OAuth2 client credentials: set on the card, the secret never shown and kept when
    # left empty, the token sent as a Bearer on dispatch, then removed.
    idp = Receiver(b'{"access_token":"panel-tok","token_type":"Bearer","expires_in":600}', "application/json")
    try:
        def auth_input(field):
            return settings().find_element(By.CSS_SELECTOR, f"[data-auth-input='{field}']")

        open_settings()
        for field, value in [("token_url", idp.url), ("client_id", "panel"), ("client_secret", "p: s%1"), ("scope", "hooks")]:
            auth_input(field).send_keys(value)
        settings().find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: card_text("[data-auth]") == f"client panel at {idp.url}, scope hooks")
        assert "p: s%1" not in driver.page_source
        open_settings()
        assert auth_input("client_secret").get_attribute("value") == "", "the secret is never shown"
        auth_input("scope").clear()
        auth_input("scope").send_keys("hooks2")
        settings().find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: card_text("[data-auth]") == f"client panel at {idp.url}, scope hooks2")
        seen = len(receiver.requests)
        api(base, publisher, "POST", f"/subscriptions/{sub_id}/dispatch", {"object_id": 501})
        wait.until(lambda d: len(receiver.requests) > seen)
        assert receiver.requests[-1][0].get("authorization") == "Bearer panel-tok", receiver.requests[-1][0]
        asked, form = idp.requests[-1]
        assert base64.b64decode(asked["authorization"].split(" ", 1)[1]) == b"panel:p%3A+s%251", asked
        assert form == b"grant_type=client_credentials&scope=hooks2", form
        open_settings()
        auth_input("token_url").clear()
        auth_input("client_id").clear()
        auth_input("scope").clear()
        settings().find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: card_text("[data-auth]") == "none")
        stored = api(base, publisher, "GET", f"/subscriptions/{sub_id}")["response"]["subscription"]
        assert "auth" not in stored, stored
    finally:
        idp.stop()

    # Every field has a label and every button a name, for screen readers.
    unnamed = driver.execute_script("""
        const missing = [];
        for (const el of document.querySelectorAll('input, select, textarea')) {
          if (!el.labels || el.labels.length === 0) missing.push(el.id || el.name);
        }
        for (const b of document.querySelectorAll('button')) {
          if (!(b.getAttribute('aria-label') || b.textContent.trim())) missing.push(b.outerHTML);
        }
        return missing;""")
    assert unnamed == [], unnamed

    # Keyboard: the Pause button works from the keyboard alone.
    card_button("Pause").send_keys(Keys.ENTER)
    wait.until(lambda d: state() == "paused")
    card_button("Resume").send_keys(Keys.SPACE)
    wait.until(lambda d: state() == "active")

    # Readable at phone width: nothing wider than the window.
    driver.set_window_size(390, 844)
    wait.until(lambda d: d.execute_script("return window.innerWidth") <= 400)
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    driver.set_window_size(1100, 1500)

    violations = [e for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert violations == [], violations

    # Delete, confirmed.
    card_button("Delete").click()
    card_button("Confirm delete").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, f"li[data-subscription='{sub_id}']"))
    text_of("subs-status", "Deleted the subscription")
    assert api(base, publisher, "GET", "/subscriptions")["response"]["subscriptions"] == []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["memory", "aws"], required=True)
    parser.add_argument("--bin", required=True, help="the webhooks-local binary")
    parser.add_argument("--moto", help="moto_server, for the aws backend")
    parser.add_argument("--screenshot", help="save a screenshot of the page here")
    args = parser.parse_args()
    if args.backend == "aws" and not args.moto:
        parser.error("--moto is needed for the aws backend")
    run(args)


if __name__ == "__main__":
    main()
