"""The web app in a real browser (Playwright driving Debian's Chromium): what a learner sees and
clicks, over scripted parts (tests/browser_app.py) and, for cited answers in both languages, the
real embedded model. `.ci/run` installs Chromium; Playwright cannot download its own here."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from browser_app import CHROMIUM, gate, picked_model_tutor, scripted_tutor, serve

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")

BOT = '[data-testid="bot"]'
USER = '[data-testid="user"]'


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def made() -> list:
    return []


@pytest.fixture(scope="module")
def app(tmp_path_factory, made):
    """The scripted app, served for the whole module (each test opens its own page)."""
    workspace = tmp_path_factory.mktemp("browser")
    tutor = scripted_tutor(workspace)
    demo, url = serve(tutor, make_tutor=picked_model_tutor(made))
    yield tutor, url
    demo.close()


@pytest.fixture
def page(browser, app):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(app[1])
    page.wait_for_selector("#send-btn")
    yield page
    context.close()


def send(page, text: str) -> None:
    page.fill("#message textarea", text)
    page.click("#send-btn")


def bot(page, text: str, timeout: float = 30_000):
    """The bot message containing `text`, once it is there."""
    found = page.locator(BOT).filter(has_text=text).last
    found.wait_for(timeout=timeout)
    return found


def chat_text(page) -> str:
    return page.inner_text("#chat")


def test_serves_at_once_with_a_welcome_and_course_questions_wait_for_the_index(browser, tmp_path):
    from llmtutor.ui.gradio_startup import IndexWarmup

    tutor = scripted_tutor(tmp_path)
    release, build = gate()
    start = time.monotonic()
    demo, url = serve(tutor, warmup=IndexWarmup(tutor, build=build).start())
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(url)
        page.wait_for_selector("#send-btn")
        assert time.monotonic() - start < 10  # listening while the index is still being built
        assert "Preparing the course index" in page.inner_text("#index-banner")
        welcome = chat_text(page)
        assert "Welcome to llmtutor" in welcome and "/help" in welcome
        assert "Quiz master" in welcome and "Ready for a quiz?" in welcome  # personas, with greetings
        assert page.is_visible("#send-btn") and page.is_visible("#stop-btn")

        send(page, "/help")
        assert "/cheap_count" in bot(page, "Commands").inner_text()

        send(page, "what is LoRA?")
        page.wait_for_function(
            "document.querySelector('#chat').innerText.includes('course index is being prepared')"
        )
        release.set()
        answer = bot(page, "[1]").inner_text()
        assert "LoRA" in answer and "Sources" in answer
        page.wait_for_selector("#index-banner", state="hidden", timeout=10_000)
    finally:
        page.close()
        demo.close()


def test_a_cited_answer_lists_numbered_sources_with_a_preview_and_the_course_link(page):
    send(page, "what is LoRA?")
    bot(page, "[1]")
    sources = page.get_by_text("📚 Sources (1)")
    sources.click()  # the collapsed detail opens
    detail = bot(page, "freezes the pre-trained weights")
    text = detail.inner_text()
    assert "[1] Supervised Fine-Tuning › LoRA" in text and text.startswith("📚 Sources (1)")
    assert "notes/" not in text  # a module and section, not a file path
    assert detail.locator("a").first.get_attribute("href").startswith("http")


def test_a_tool_result_is_the_message_and_typed_html_stays_text(page):
    send(page, "what is LoRA?")
    send(page, "cheap count please")  # sent while the first turn runs: answered after it
    bot(page, "📚 Sources")
    result = bot(page, "counter total = 3")
    assert result.inner_text().strip() == "counter total = 3"
    assert "🛠 cheap_count" in chat_text(page)  # the call: a small detail above it

    send(page, "plot the memory")
    image = page.locator("#chat img").last
    image.wait_for()
    chat_width = page.locator("#chat").bounding_box()["width"]
    assert image.bounding_box()["width"] > 0.6 * chat_width  # plots at (nearly) full width
    assert bot(page, "14.0 GiB")  # the table is in front too

    typed = '<img src=x onerror="window.__xss=1"> hello'
    send(page, typed)
    page.locator(USER).filter(has_text="onerror").wait_for()
    assert typed in page.locator(USER).last.inner_text()
    assert page.locator('#chat img[src="x"]').count() == 0
    assert page.evaluate("window.__xss") is None


def test_a_message_over_the_limit_is_refused_in_the_learners_language(page):
    send(page, "x " * 10_000)
    answer = bot(page, "over the limit").inner_text()
    assert "llmtutor tools list" not in answer and "invalid arguments" not in answer
    send(page, "你" * 20_000)
    assert "超过上限" in bot(page, "超过上限").inner_text()


def test_approval_runs_a_job_with_progress_then_shows_its_result_and_the_jobs_panel(page):
    send(page, "lab: count to six")
    page.wait_for_selector("#approve-btn")
    assert "demo_lab" in chat_text(page)
    page.click("#approve-btn")
    page.wait_for_selector("#send-btn:disabled")  # no new message while the job runs (Stop ends it)
    # While it runs, the call's title shows the stage and step (percent) of the job.
    page.wait_for_function(
        "/demo_lab · train \\d+\\/6 \\(\\d+%\\)/.test(document.querySelector('#chat').innerText)",
        timeout=60_000,
    )
    bot(page, "ran steps [1, 2, 3, 4, 5, 6]", timeout=60_000)
    assert "succeeded" in chat_text(page)
    page.wait_for_selector("#send-btn:enabled")

    page.get_by_role("tab", name="Jobs").click()
    row = page.locator("#jobs-table tr.job-succeeded").first
    row.wait_for()
    assert "demo" in row.inner_text() and "100%" in row.inner_text()
    page.wait_for_function("document.querySelector('#job-log').innerText.length > 0")
    # The training loss per step, drawn from the job's progress events.
    page.locator("#job-loss").wait_for(state="visible", timeout=30_000)
    page.wait_for_selector("#job-loss canvas, #job-loss svg", timeout=15_000)


def test_stop_cancels_the_turn_and_its_job_which_resumes_from_the_jobs_panel(page):
    send(page, "slow lab please")
    page.wait_for_selector("#approve-btn")
    page.click("#approve-btn")
    page.wait_for_function(
        "/demo_lab · train \\d+\\/60/.test(document.querySelector('#chat').innerText)", timeout=60_000
    )
    page.click("#stop-btn")
    bot(page, "cancelled", timeout=30_000)

    page.get_by_role("tab", name="Jobs").click()
    page.locator("#jobs-table tr.job-cancelled").first.wait_for()
    page.click("#job-resume")  # the newest job is selected
    page.get_by_text("resumed from its last checkpoint").wait_for()
    page.locator("#jobs-table tr.job-running, #jobs-table tr.job-queued").first.wait_for(timeout=30_000)
    page.click("#job-cancel")
    page.locator("#job-note").filter(has_text="cancelled").wait_for(timeout=30_000)


def test_a_reload_keeps_the_conversation_even_mid_approval(page):
    send(page, "big count")
    page.wait_for_selector("#approve-btn")
    sidebar = page.locator("#conversations")
    sidebar.get_by_text("big count").wait_for()  # listed (and remembered by the browser)
    page.reload()
    page.wait_for_selector("#send-btn")
    page.locator(USER).filter(has_text="big count").wait_for()
    page.wait_for_selector("#approve-btn")  # the pending approval is back
    page.click("#approve-btn")
    bot(page, "counter total = 200")
    assert "big count" in sidebar.inner_text()
    page.click("#new-chat")
    page.wait_for_function("!document.querySelector('#chat').innerText.includes('big count')")
    sidebar.get_by_text("big count").click()
    bot(page, "counter total = 200")

    page.get_by_text("Rename or delete").click()
    page.fill("#chat-title input", "my counting")
    page.click("#chat-rename")
    sidebar.get_by_text("my counting").wait_for()
    page.click("#chat-delete")
    page.wait_for_function("!document.querySelector('#conversations').innerText.includes('my counting')")


def test_upload_checks_every_row_and_hands_a_good_file_to_the_chat(page, app, tmp_path):
    bad, good = tmp_path / "mixed rows.jsonl", tmp_path / "good.jsonl"
    row = {"instruction": "What is LoRA?", "output": "Low-rank adapters."}
    bad.write_text("\n".join([json.dumps(row), json.dumps({"instruction": "no answer"}), json.dumps(row)]))
    good.write_text("\n".join(json.dumps(row) for _ in range(3)))

    page.get_by_role("tab", name="Data").click()
    page.set_input_files("#dataset-upload input[type=file]", str(bad))
    report = page.locator("#dataset-report")
    report.filter(has_text="line 2").wait_for()
    assert "Format detected: alpaca" in report.inner_text() and "mixed_rows.jsonl" in report.inner_text()
    assert not page.is_visible("#dataset-use")

    page.locator("#dataset-upload button[aria-label='Clear']").first.click()
    page.set_input_files("#dataset-upload input[type=file]", str(good))
    report.filter(has_text="all valid").wait_for()
    page.click("#dataset-use")
    page.wait_for_function("document.querySelector('#message textarea').value.includes('data/good.jsonl')")
    assert (app[0].settings.workspace / "data" / "good.jsonl").is_file()


def test_the_model_picker_chats_with_a_registered_model(page, app, made):
    from llmtutor.model_registry import RegisteredModel, register_model

    workspace = app[0].settings.workspace
    folder = workspace / "outputs" / "mine-merged"
    folder.mkdir(parents=True, exist_ok=True)
    register_model(workspace / "models", RegisteredModel(name="mine", path=str(folder), kind="merged"))
    page.reload()
    page.wait_for_selector("#send-btn")
    page.click("#model-picker input")
    page.get_by_role("option", name="mine — your merged model (hf)").click()
    send(page, "Tell me about pizza ovens")
    bot(page, "I am your fine-tuned model")
    assert made and made[-1].chat_model == str(folder) and made[-1].backend == "hf"


def test_the_quiz_grade_stays_in_view_when_the_next_question_arrives(page):
    send(page, "quiz me")
    grade = bot(page, "Correct!")
    question = bot(page, "Question 2 of 3")
    assert "Question 2" not in grade.inner_text()  # two messages: the grade is not pushed away
    chat = page.locator("#chat").bounding_box()
    box = grade.bounding_box()
    assert box["y"] + box["height"] > chat["y"] and box["y"] < chat["y"] + chat["height"]
    assert question.is_visible()


def test_progress_tab_and_a_chinese_conversation(page):
    page.get_by_role("tab", name="Progress").click()
    page.locator("#progress-mastery").filter(has_text="No graded answers yet").wait_for()
    assert "study plan" in page.inner_text("#progress-plan")
    page.get_by_role("tab", name="Chat").click()
    send(page, "你好")
    assert bot(page, "你好").inner_text().startswith("你好")


def test_real_model_cited_answers_in_english_and_chinese(browser, workspace):
    """The real tutor (embedded SmolLM2, real index and router) in the page: sources numbered
    from 1 with module and section, in English and in Chinese."""
    from llmtutor.agents.tutor import Tutor
    from llmtutor.settings import Settings

    tutor = Tutor(Settings(workspace=workspace, max_tokens=48, n_ctx=4096))
    demo, url = serve(tutor)
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    try:
        page.goto(url)
        page.wait_for_selector("#send-btn")
        send(page, "What is LoRA?")
        bot(page, "📚 Sources (", timeout=240_000)  # the sources come last: the turn is over
        answer = bot(page, "[1]").inner_text()
        assert "Sources" in answer and "notes/" not in answer
        send(page, "什么是 LoRA？")
        assert "来源" in bot(page, "来源", timeout=60_000).inner_text()
    finally:
        page.close()
        demo.close()
        tutor.close()
