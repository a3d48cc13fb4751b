"""The comparison's report.html in a real browser: headless Chromium (the Debian packages chromium and
chromium-driver, which `make chromium` installs) driven through selenium, on a report written by a small
`sectionrank compare` run.

In the browser every plot loads, the console has no error, the verdict is on the first screen of a 1280x800
window, and at 900 px nothing is wider than the page (tables fit or scroll inside their own box). Screenshots
at 1280 and 900 px are saved in each test's tmp dir (`report-1280.png`, `report-900.png`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sectionrank.cli import main

pytestmark = pytest.mark.slow

TINY = str(Path(__file__).parents[1] / "ranker" / "world_small.toml")
#: The smallest comparison that writes every part of the report: 2 seeds, 1,000 logged requests each.
SMALL = [
    "--seeds",
    "2",
    "--requests",
    "1000",
    "--knob-requests",
    "600",
    "--eval-requests",
    "100",
    "--quick",
    "--feature-check",
    "none",
]
#: Seconds to wait for the page and its images.
LOAD_TIMEOUT = 30

#: The outermost elements whose right edge passes the window's, outside any box that clips or scrolls them.
OVERFLOWING_JS = """
const width = window.innerWidth;
const clipped = (el) => {
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(p).overflowX)) return true;
  }
  return false;
};
const over = (el) => el.getBoundingClientRect().right > width + 0.5 && !clipped(el);
return Array.from(document.body.querySelectorAll('*'))
  .filter((el) => over(el) && !(el.parentElement && over(el.parentElement)))
  .map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' +
       Math.round(el.getBoundingClientRect().right) + 'px')
  .slice(0, 10);
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "compare"
    result = CliRunner().invoke(main, ["compare", "--world", TINY, "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.fail("the browser check needs the Debian packages chromium and chromium-driver: make chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,800")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(LOAD_TIMEOUT)
    yield driver
    driver.quit()


def open_at(driver, page: Path, width: int, height: int) -> None:
    """Load `page` in a `width` x `height` viewport (CSS pixels, scale 1) and wait for its images."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.as_uri())
    WebDriverWait(driver, LOAD_TIMEOUT).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"
        )
    )
    assert driver.execute_script("return [window.innerWidth, window.innerHeight]") == [width, height]


def test_report_every_image_loads(browser, report):
    open_at(browser, report, 1280, 800)
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.closest('figure')?.id || i.alt, i.naturalWidth])"
    )
    assert len(images) >= 3
    broken = [name for name, natural_width in images if not natural_width > 0]
    assert broken == [], f"images that did not load: {broken}"


def test_report_logs_no_console_error(browser, report):
    open_at(browser, report, 1280, 800)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_report_verdict_is_on_the_first_screen_at_1280x800(browser, report, tmp_path):
    from selenium.webdriver.common.by import By

    open_at(browser, report, 1280, 800)
    browser.save_screenshot(str(tmp_path / "report-1280.png"))
    verdicts = browser.find_elements(By.CSS_SELECTOR, "section#verdict")
    assert len(verdicts) == 1, "report.html has no <section id=verdict>"
    verdict = verdicts[0]
    assert verdict.is_displayed()
    top = browser.execute_script("return arguments[0].getBoundingClientRect().top", verdict)
    assert browser.execute_script("return window.scrollY") == 0
    assert 0 <= top < 800, f"the verdict starts {top:.0f} px down a window 800 px high"


def test_report_is_no_wider_than_a_900px_window(browser, report, tmp_path):
    open_at(browser, report, 900, 800)
    browser.save_screenshot(str(tmp_path / "report-900.png"))
    scroll_width = browser.execute_script("return document.documentElement.scrollWidth")
    assert scroll_width <= 900, (
        f"the page is {scroll_width} px wide in a 900 px window; widest elements: "
        f"{browser.execute_script(OVERFLOWING_JS)}"
    )
    assert browser.execute_script(OVERFLOWING_JS) == []
