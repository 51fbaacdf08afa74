"""What every browser test shares: headless Chromium (Debian's chromium +
chromium-driver) driven by Selenium against pytest-django's live server, at
1400 x 900, signed in as a superuser; screenshots under
var/test-artifacts/browser/ (gitignored; TEST_ARTIFACTS_DIR moves them); and
the checks every screen passes (no sideways scroll, the product's words).

`make test` installs chromium and chromium-driver when they are missing and it
can (apt-get as root); elsewhere these tests skip and say why.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")

CHROMIUM = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver") or next(
    (p for p in ("/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver") if os.path.exists(p)), None)
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                "(`apt-get install -y chromium chromium-driver`; `make test` does it when run as root)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", settings.BASE_DIR / "var" / "test-artifacts")) / "browser"
WIDTH, HEIGHT = 1400, 900
WAIT = 15
PASSWORD = "s3cret-pass!"


@pytest.fixture(scope="module")
def driver():
    """One headless Chromium a test module, its window 1400 x 900 (scrollbars
    hidden: the page gets the whole width, as on a screen with overlay scrollbars)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WIDTH},{HEIGHT}", "--lang=en-US", "--disable-extensions", "--hide-scrollbars"):
        options.add_argument(argument)
    try:
        browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        pytest.skip(f"chromium would not start: {exc.msg}")
    browser.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield browser
    browser.quit()


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", email="root@example.com", password=PASSWORD)


def sign_in(driver, live_server, user) -> None:
    """Sign the browser in as ``user`` (a session cookie made by Django's test client)."""
    client = Client()
    client.force_login(user)
    driver.delete_all_cookies()
    driver.get(f"{live_server.url}/admin/login/")
    driver.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                       "path": "/"})


@pytest.fixture
def signed_in(driver, live_server, root):
    """The browser, signed in as ``root``, its page 1400 x 900."""
    set_viewport(driver, WIDTH, HEIGHT)
    sign_in(driver, live_server, root)
    return driver


def set_viewport(driver, width: int, height: int) -> None:
    """The size asked is the window's: make the page's viewport ``width`` px wide whatever the browser adds."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return window.innerWidth;")
    if inner != width:
        driver.set_window_size(width + (width - inner), height)


def wait_for(driver, condition, timeout=WAIT):
    """``condition(driver)`` once it is true (Selenium's wait, polled every 0.1 s)."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def screenshot(driver, name: str, *, full_page: bool = False) -> Path:
    """Save the viewport (or the whole page's height, at the same width) as ``<name>.png``."""
    target = ARTIFACTS / f"{name}.png"
    width, height = (driver.get_window_size()[key] for key in ("width", "height"))
    if full_page:
        page = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(width, min(max(page + 140, height), 4000))
    driver.save_screenshot(str(target))
    if full_page:
        driver.set_window_size(width, height)
    return target


def text_of(driver, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


def page_left(page):
    """A wait condition: ``page`` (an element of the page we leave) is gone.

    Selenium's ``staleness_of``, except that ChromeDriver asked about a node
    while its document is being replaced sometimes answers "Node with given
    id does not belong to the document" (a ``WebDriverException``) instead of
    a stale element: that too means the page was left."""
    def left(driver) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return left


def click(driver, element_id: str) -> None:
    """Press a button that posts, and wait for the page it leads to (and its message)."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, element_id).click()
    wait_for(driver, page_left(page))
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))


def no_sideways_scroll(driver) -> None:
    """The page is no wider than the window; else which elements stick out."""
    width = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    if width[0] > width[1]:
        wide = driver.execute_script(
            "const w = document.documentElement.clientWidth;"
            "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 0.5)"
            "  .slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + e.getBoundingClientRect().right);")
        raise AssertionError(f"the page scrolls sideways: {width[0]} px wide in {width[1]} px: {wide}")


def product_words(driver) -> None:
    """No internal document numbers ("seed 002") in the page's content."""
    assert "seed" not in driver.find_element(By.ID, "content").text.lower()


def screen_fits(driver) -> None:
    """What every screen must be: no sideways scroll, and the product's words."""
    product_words(driver)
    no_sideways_scroll(driver)


def list_fits(driver) -> None:
    """A change list's columns all show: its table is not wider than its box, nor than the window."""
    overflow = driver.execute_script(
        "const box = document.querySelector('#changelist .results');"
        "const table = document.getElementById('result_list');"
        "return Math.max(box.scrollWidth - box.clientWidth, table.getBoundingClientRect().right - window.innerWidth);")
    assert overflow <= 0, f"the list is {overflow}px wider than its space"
    screen_fits(driver)
