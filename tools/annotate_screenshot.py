"""docs/annotate.png: the ``vos annotate`` page in headless Chromium, after Track.

    OMP_NUM_THREADS=1 python -m tools.annotate_screenshot [docs/annotate.png]

The page runs on examples/car-turn.mp4 with the shipped mask maker and tracker, as a user would
use it: a box dragged around the car (the box of examples/car-turn-mask.png plus 5% a side), Save
mask, Track; then it pauses the overlay and takes the screenshot (a 256-colour PNG, to stay
small). It prints the IoU of the page's mask with the example's hand-made one and the outputs
Track wrote, so the run doubles as an end-to-end check of the page with the real networks.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from tests.test_annotate_browser import drag, start_browser, wait_for
from vos_cli.app.server import AnnotateServer
from vos_cli.app.workspace import Workspace
from vos_cli.io.masks import read_mask
from vos_cli.prompts.data import margin_box
from vos_cli.prompts.evaluate import iou

ROOT = Path(__file__).resolve().parents[1]


def main(target: Path) -> None:
    truth = read_mask(ROOT / "examples" / "car-turn-mask.png") > 0
    h, w = truth.shape
    box = margin_box(truth)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "car-turn_vos"
        workspace = Workspace(ROOT / "examples" / "car-turn.mp4", out, device="cpu")
        server = AnnotateServer(workspace, 0)
        server.start()
        driver = start_browser(Path(tmp) / "profile")
        try:
            driver.set_window_size(1280, 760)
            driver.get(server.url)
            wait_for(driver, "document.body.dataset.ready")
            canvas = driver.find_element("id", "view")
            drag(driver, canvas, (box.x0 / w, box.y0 / h), (box.x1 / w, box.y1 / h))
            wait_for(driver, "Number(document.body.dataset.maskPixels) > 0")
            wait_for(driver, "!document.body.dataset.busy")
            driver.find_element("id", "save").click()
            wait_for(driver, "document.getElementById('saved').textContent.includes('mask.png')")
            made = read_mask(out / "mask.png") > 0
            print(
                f"the page's mask from a dragged box: IoU {iou(made, truth):.3f} with the example's"
            )
            driver.find_element("id", "track").click()
            wait_for(driver, "document.body.dataset.job == 'done'", timeout=600)
            written = sorted(p.name for p in out.iterdir())
            print(
                f"Track wrote {', '.join(written)}; {len(list((out / 'masks').glob('*.png')))} masks"
            )
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
