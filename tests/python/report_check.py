#!/usr/bin/env python3
"""Opens a `worker detect --report` page in Debian's headless Chromium (through chromedriver
and the selenium WebDriver client) from the file system, as an analyst would, and saves a
screenshot. Reports whether the page rendered, how many of its images decoded, the photos
in page order with their dissimilarity, and every resource the browser fetched for the page
(a self-contained page fetches none).

Prints one JSON line: {"title": ..., "photos": [...], "images": N, "images_loaded": N,
"fetched": [...], "skipped": [...], "page_height": N}.

Usage: report_check.py INDEX.html SCREENSHOT.png
"""

import json
import pathlib
import shutil
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

STATE_JS = """
const q = (css) => Array.from(document.querySelectorAll(css));
return {
  title: document.title,
  photos: q("section.photo").map((s) => ({
    heading: s.querySelector("h2").textContent,
    dissimilarity: Number(s.dataset.dissimilarity),
  })),
  images: q("img").length,
  images_loaded: q("img").filter((i) => i.complete && i.naturalWidth > 0).length,
  fetched: performance.getEntriesByType("resource").map((e) => e.name),
  skipped: q("ul.skipped li").map((li) => li.textContent),
  page_height: document.body.scrollHeight,
};
"""


def main():
    page, screenshot = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2]
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    try:
        driver.get(page.as_uri())
        state = driver.execute_script(STATE_JS)
        deadline = time.time() + 30
        while state["images_loaded"] < state["images"] and time.time() < deadline:
            time.sleep(0.2)
            state = driver.execute_script(STATE_JS)
        driver.save_screenshot(screenshot)
        print(json.dumps(state))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
