"""docs/annotate.png: the ``vos annotate`` page in headless Chromium, after Track.

    OMP_NUM_THREADS=1 python -m tools.annotate_screenshot [docs/annotate.png]

The page runs on examples/car-turn.mp4 with examples/car-turn-mask.png loaded (``--mask``) and
the shipped tracker; it presses Track, waits for the outputs, pauses the overlay and takes the
screenshot (a 256-colour PNG, to stay small).
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from tests.test_annotate_browser import start_browser, wait_for
from vos_cli.app.server import AnnotateServer
from vos_cli.app.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


def main(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(
            ROOT / "examples" / "car-turn.mp4",
            Path(tmp) / "car-turn_vos",
            mask=(0, ROOT / "examples" / "car-turn-mask.png"),
            device="cpu",
        )
        server = AnnotateServer(workspace, 0)
        server.start()
        driver = start_browser(Path(tmp) / "profile")
        try:
            driver.set_window_size(1280, 760)
            driver.get(server.url)
            wait_for(driver, "document.body.dataset.ready")
            driver.find_element("id", "track").click()
            wait_for(driver, "document.body.dataset.job == 'done'", timeout=600)
            driver.execute_script(
                "result.pause(); result.currentTime = 1.2; scrub.value = 0; window.scrollTo(0, 0)"
            )
            time.sleep(1.0)
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
            server.stop()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.quantize(256, method=Image.Quantize.MEDIANCUT)
    image.save(target, optimize=True)
    print(f"wrote {target} ({target.stat().st_size // 1024} kB, {image.width}x{image.height})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "annotate.png")
