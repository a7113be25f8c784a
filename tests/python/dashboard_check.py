#!/usr/bin/env python3
"""Opens the coordinator's dashboard in Debian's headless Chromium (through chromedriver and
the selenium WebDriver client), as a person would: first without a token, then with a wrong
one, then signed in; waits for the live page to show the members, a loss curve with points
from several steps, the checkpoint table and a splice evaluation's heat maps, and saves a
screenshot.

Prints one JSON line: {"without_token": {...}, "wrong_token": {...}, "signed_in": {...}}.

Usage: dashboard_check.py URL TOKEN SCREENSHOT.png [--wait-s 90]
"""

import argparse
import json
import shutil
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1700"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(options=options, service=Service(driver_path))


# Read in one script call: the page redraws every 2 s, so element handles kept across
# calls go stale.
STATE_JS = """
const q = (css) => Array.from(document.querySelectorAll(css));
const points = (id) => { const c = document.getElementById(id); return c ? Number(c.dataset.points || 0) : 0; };
const one = (css) => { const e = document.querySelector(css); return e ? e.textContent : null; };
return {
  login_form: q("form#login").length > 0,
  error: one("#error"),
  member_rows: q("#members tbody tr").length,
  member_nodes: [...new Set(q("#members tbody tr").map((r) => r.dataset.node))].sort(),
  loss_points: points("chart-loss"),
  phase_points: points("chart-phases"),
  checkpoint_rows: q("#checkpoints tbody tr").length,
  summary: one("#summary"),
  heatmaps_loaded: q("img.eval-heatmap").filter((i) => i.complete && i.naturalWidth > 0).length,
};
"""


def page_state(driver):
    return driver.execute_script(STATE_JS)


def sign_in(driver, token):
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("token")
    ap.add_argument("screenshot")
    ap.add_argument("--wait-s", type=float, default=90)
    args = ap.parse_args()
    out = {}
    driver = browser()
    try:
        driver.get(args.url)
        out["without_token"] = page_state(driver)
        sign_in(driver, args.token + "-wrong")
        out["wrong_token"] = page_state(driver)
        sign_in(driver, args.token)
        deadline = time.time() + args.wait_s
        state = page_state(driver)
        while time.time() < deadline and not (
            state["member_rows"] >= 2 and state["loss_points"] >= 3 and state["checkpoint_rows"] >= 1
            and state["heatmaps_loaded"] >= 1
        ):
            time.sleep(1)
            state = page_state(driver)
        first = state
        # Live: more points appear without reloading the page.
        while time.time() < deadline and state["loss_points"] <= first["loss_points"]:
            time.sleep(1)
            state = page_state(driver)
        state["loss_points_before"] = first["loss_points"]
        out["signed_in"] = state
        driver.save_screenshot(args.screenshot)
    finally:
        driver.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
