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


def page_state(driver):
    q = lambda css: driver.find_elements(By.CSS_SELECTOR, css)
    loss = q("#chart-loss")
    return {
        "login_form": bool(q("form#login")),
        "error": q("#error")[0].text if q("#error") else None,
        "member_rows": len(q("#members tbody tr")),
        "member_nodes": sorted({r.get_attribute("data-node") for r in q("#members tbody tr")}),
        "loss_points": int(loss[0].get_attribute("data-points") or 0) if loss else 0,
        "phase_points": int(q("#chart-phases")[0].get_attribute("data-points") or 0) if q("#chart-phases") else 0,
        "checkpoint_rows": len(q("#checkpoints tbody tr")),
        "summary": q("#summary")[0].text if q("#summary") else None,
        "heatmaps_loaded": sum(
            1 for img in q("img.eval-heatmap") if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        ),
    }


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
