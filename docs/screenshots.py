"""Remake docs/screenshots/*.png: the web app's main screens at desktop (1280×800) and phone
(390×844) width, in Debian's Chromium, over the scripted app of the browser tests
(tests/browser_app.py: counting tools, a real job of the cheap `demo` kind, a fixed course passage).

    .venv/bin/python docs/screenshots.py      # needs /usr/bin/chromium and playwright (dev extra)

CJK and emoji need fonts in the browser's machine (Debian: fonts-noto-cjk fonts-noto-color-emoji).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def seed_progress(tutor) -> None:
    """A few graded answers, so the Progress tab has mastery and reviews to show."""
    from llmtutor.knowledge.learner.evidence import record_outcome

    for about, score in (("LoRA", 1.0), ("quantization", 0.5), ("tokenization", 1.0), ("RAG", 0.0)):
        record_outcome(tutor.settings.database, "check", score, about=about)


def main() -> None:
    from browser_app import CHROMIUM, scripted_tutor, serve
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix="llmtutor-shots-"))
    tutor = scripted_tutor(workspace)
    seed_progress(tutor)
    demo, url = serve(tutor)
    bad = workspace / "upload" / "my rows.jsonl"
    bad.parent.mkdir(parents=True)
    row = {"instruction": "What is LoRA?", "output": "Low-rank adapters on frozen weights."}
    bad.write_text("\n".join(json.dumps(r) for r in (row, {"instruction": "no answer"}, row, {"output": ""})))

    def send(page, text: str, wait: str) -> None:
        page.fill("#message textarea", text)
        page.click("#send-btn")
        page.locator('[data-testid="bot"]').filter(has_text=wait).last.wait_for(timeout=60_000)

    def shot(page, name: str) -> None:
        page.wait_for_timeout(400)
        page.screenshot(path=str(OUT / f"{name}.png"))
        print("wrote", OUT / f"{name}.png")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            page = browser.new_context(viewport=viewport).new_page()
            page.goto(url)
            page.wait_for_selector("#send-btn")
            shot(page, f"welcome-{label}")
            send(page, "what is LoRA?", "📚")
            page.get_by_text("📚 Sources").last.click()
            send(page, "plot the memory of a 7B model", "14.0 GiB")
            shot(page, f"chat-{label}")
            if label == "desktop":
                page.fill("#message textarea", "lab: a short fine-tune")
                page.click("#send-btn")
                page.click("#approve-btn")
                page.wait_for_function(
                    "/demo_lab · train \\d+\\/6/.test(document.querySelector('#chat').innerText)",
                    timeout=60_000,
                )
                shot(page, "lab-desktop")
                page.locator('[data-testid="bot"]').filter(has_text="ran steps").last.wait_for(timeout=60_000)
                page.fill("#message textarea", "slow lab: a longer one")
                page.click("#send-btn")
                page.click("#approve-btn")
                page.wait_for_function(
                    "/demo_lab · train \\d+\\/60/.test(document.querySelector('#chat').innerText)",
                    timeout=60_000,
                )
                page.get_by_role("tab", name="Jobs").click()
                page.locator("#jobs-table tr.job-running").first.wait_for(timeout=30_000)
                page.wait_for_timeout(2500)  # a refresh or two: the ETA
                shot(page, "jobs-desktop")
                page.click("#job-cancel")
                page.locator("#job-note").filter(has_text="cancelled").wait_for(timeout=30_000)
            page.get_by_role("tab", name="Data").click()
            page.set_input_files("#dataset-upload input[type=file]", str(bad))
            page.locator("#dataset-report").filter(has_text="line 2").wait_for()
            shot(page, f"data-{label}")
            page.get_by_role("tab", name="Progress").click()
            page.locator("#progress-mastery").filter(has_text="%").wait_for(timeout=30_000)
            page.wait_for_timeout(800)  # the chart
            shot(page, f"progress-{label}")
            page.context.close()
        browser.close()
    demo.close()


if __name__ == "__main__":
    main()
