"""``vos annotate`` in a real browser: headless Chromium draws a box on a real frame, sees the
mask, tracks, and finds the outputs (and is asked before they are written over)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.app_fixtures import annotate_server, clip, tiny_maskmaker_path  # noqa: F401
from vos_cli.app.server import AnnotateServer
from vos_cli.io.masks import object_ids, read_mask

CHROMIUM = next(
    (
        found
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        if (found := shutil.which(name))
    ),
    None,
)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no Chromium and chromedriver installed (Debian: apt-get install chromium "
    "chromium-driver); the page is tested in a real browser",
)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,800",
)


def start_browser(profile: Path):
    """Headless Chromium under chromedriver (Debian's: no download, no network)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture()
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    driver = start_browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 30.0):
    """Poll a JavaScript expression until it is truthy; its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.1)
    status = driver.execute_script("return document.getElementById('status').textContent")
    raise AssertionError(f"timed out waiting for {script!r}; the page says {status!r}")


def wait_for_alert(driver, timeout: float = 30.0):
    """The page asks before writing over outputs only after a request to the server has
    answered, so the dialog opens a moment after the click: wait for it."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(expected_conditions.alert_is_present())


def drag(driver, element, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press at ``start`` and release at ``end``, fractions of ``element``'s size from its
    top-left corner (Selenium's offsets count from the centre)."""
    from selenium.webdriver.common.action_chains import ActionChains

    w, h = element.size["width"], element.size["height"]

    def offset(p):
        return round((p[0] - 0.5) * w), round((p[1] - 0.5) * h)

    chain = ActionChains(driver)
    chain.move_to_element_with_offset(element, *offset(start)).click_and_hold()
    for t in (0.3, 0.7, 1.0):
        x = start[0] + t * (end[0] - start[0])
        y = start[1] + t * (end[1] - start[1])
        chain.move_to_element_with_offset(element, *offset((x, y)))
    chain.release().perform()


def click_at(driver, element, at: tuple[float, float]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    w, h = element.size["width"], element.size["height"]
    dx, dy = round((at[0] - 0.5) * w), round((at[1] - 0.5) * h)
    ActionChains(driver).move_to_element_with_offset(element, dx, dy).click().perform()


def test_box_mask_track_outputs(browser, annotate_server: AnnotateServer, tmp_path: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(annotate_server.url)
    wait_for(driver, "document.body.dataset.ready")
    canvas = driver.find_element(By.ID, "view")
    assert driver.execute_script("return [view.width, view.height]") == [96, 64]
    assert canvas.size["width"] > 96  # a small clip is shown larger; pointing maps back

    # a box on the red square (x 10..30, y 20..40 of 96x64): the mask appears
    tic = time.perf_counter()
    drag(driver, canvas, (8 / 96, 18 / 64), (32 / 96, 42 / 64))
    pixels = int(
        wait_for(
            driver,
            "Number(document.body.dataset.maskPixels) > 0 && document.body.dataset.maskPixels",
        )
    )
    seconds = time.perf_counter() - tic
    assert pixels > 0 and seconds < 5
    # the mask is drawn over the frame in object 1's DAVIS colour (128, 0, 0), half opaque
    r, g, b, _ = driver.execute_script(
        "return Array.from(view.getContext('2d').getImageData(20, 25, 1, 1).data)"
    )
    assert r > g + 40 and r > b + 40

    # a click adds to the object; undo takes it back
    click_at(driver, canvas, (50 / 96, 30 / 64))
    wait_for(driver, "document.querySelector('#objects li').textContent.includes('1 click')")
    driver.find_element(By.ID, "undo").click()
    wait_for(driver, "document.querySelector('#objects li').textContent.includes('0 click')")

    # a second box on the green disc (centre 70,15, radius 8) is object 2
    drag(driver, canvas, (60 / 96, 6 / 64), (80 / 96, 24 / 64))
    wait_for(driver, "document.querySelectorAll('#objects li').length == 2")
    wait_for(driver, "!document.body.dataset.busy")

    # Track: a progress bar, then the overlay plays and the outputs are offered
    driver.find_element(By.ID, "track").click()
    wait_for(driver, "document.body.dataset.job == 'done'", timeout=120)
    out = annotate_server.workspace.out_dir
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 12
    assert object_ids(read_mask(masks[0])) == [1, 2]
    for name in ("overlay.mp4", "cutout.mov", "matte.mp4"):
        assert (out / name).stat().st_size > 0
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('#outputs a'))"
        ".map(a => [a.dataset.output, a.getAttribute('href')])"
    )
    assert {k for k, _ in links} == {"masks", "overlay", "cutout", "matte"}
    assert all(href.startswith("/files/") and "token=" in href for _, href in links)
    assert "overlay.mp4" in driver.execute_script("return result.src")
    assert driver.execute_script("return progress.value == progress.max")

    # Track again: the page asks before writing over; "Cancel" leaves every file alone
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    driver.find_element(By.ID, "track").click()
    alert = wait_for_alert(driver)
    assert "exist" in alert.text
    alert.dismiss()
    time.sleep(0.5)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before

    # Save mask: the PNG vos segment --mask takes
    driver.find_element(By.ID, "save").click()
    wait_for(driver, "document.getElementById('saved').textContent.includes('mask.png')")
    saved = read_mask(out / "mask.png")
    assert object_ids(saved) == [1, 2]
    assert saved.shape == (64, 96) and np.all(saved[30, 20] == 1)


def test_loaded_mask_is_shown_and_tracked_after_confirmation(
    browser,
    clip: Path,  # noqa: F811
    tmp_path: Path,
    tiny_model_path: Path,
    tiny_maskmaker_path: Path,  # noqa: F811
) -> None:
    """``--mask`` loads a mask to fix; Track over existing outputs after saying yes."""
    from selenium.webdriver.common.by import By

    from tests.conftest import first_mask
    from vos_cli.app.workspace import Workspace
    from vos_cli.io.masks import write_mask

    write_mask(tmp_path / "given.png", first_mask())
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "old.txt").write_text("an earlier run")
    workspace = Workspace(
        clip,
        out,
        mask=(0, tmp_path / "given.png"),
        weights=tiny_model_path,
        mask_weights=tiny_maskmaker_path,
        device="cpu",
    )
    server = AnnotateServer(workspace, 0)
    server.start()
    try:
        browser.get(server.url)
        wait_for(browser, "document.body.dataset.ready")
        assert int(browser.execute_script("return document.body.dataset.maskPixels")) == int(
            (first_mask() > 0).sum()
        )
        ids = browser.execute_script(
            "return Array.from(document.querySelectorAll('#objects li')).map(li => li.dataset.id)"
        )
        assert ids == ["1", "4"]
        browser.find_element(By.ID, "cutout").send_keys("PNG")  # the PNG folder
        browser.find_element(By.ID, "track").click()
        alert = wait_for_alert(browser)
        assert "masks" in alert.text
        alert.accept()
        wait_for(browser, "document.body.dataset.job == 'done'", timeout=120)
        assert len(list((out / "masks").glob("*.png"))) == 12
        assert len(list((out / "cutout").glob("*.png"))) == 12
        assert (out / "masks" / "old.txt").read_text() == "an earlier run"  # nothing deleted
    finally:
        server.stop()
