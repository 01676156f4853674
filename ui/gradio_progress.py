"""The Progress tab: the learner model's view of the learner (mastery per module and reviews due,
as a chart and a table), what to study next, and their study plan. Built from the same tools the
chat runs (learner_progress, next_step, study_plan), refreshed whenever the tab is opened, so it
follows the quiz answers just given."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmtutor.errors import LLMTutorError
from llmtutor.paths import for_display

if TYPE_CHECKING:
    from llmtutor.ui.gradio_session import Session

# (tool, arguments): read-only reports; a tool this deployment lacks is left out.
REPORTS = (
    ("learner_progress", {"chart": True}),
    ("next_step", {}),
    ("study_plan", {"action": "show"}),
)


def progress_report(session: Session, learner_id: str) -> tuple[list[str], str | None]:
    """The three reports as Markdown, and the chart's displayable copy (or None)."""
    from llmtutor.tools.registry import output_images, render_markdown

    tutor = session.tutor
    ctx = tutor.tool_context(learner_id)
    parts, chart = [], None
    for name, args in REPORTS:
        if name not in tutor.registry:
            continue
        try:
            # The registry's run, not Tutor.run_tool: looking is no lab, and must not count as one.
            output = tutor.registry.get(name).run(dict(args), ctx)
        except LLMTutorError as exc:
            parts.append(f"_{name}: {exc.message}_")
            continue
        parts.append(render_markdown(output))
        for image in output_images(output):
            shown = for_display(image, tutor.settings.workspace)
            chart = str(shown) if shown is not None else chart
    return parts, chart


def progress_tab(session: Session) -> dict[str, Any]:
    """The tab's components; returns the refresh event's function, inputs and outputs (the app
    runs it when the tab is selected)."""
    import gradio as gr

    @session.with_request
    def refresh(request=None):
        try:
            parts, chart = progress_report(session, session.learner(request).id)
        except LLMTutorError as exc:
            return f"Error: {exc}", None, "", ""
        while len(parts) < 3:
            parts.append("")
        return parts[0], chart, parts[1], parts[2]

    with gr.Row():
        with gr.Column(scale=3):
            mastery = gr.Markdown(label="Mastery", elem_id="progress-mastery")
            chart = gr.Image(label="Mastery and reviews due", type="filepath", interactive=False, height=360)
        with gr.Column(scale=2):
            next_step = gr.Markdown(label="Next step", elem_id="progress-next")
            plan = gr.Markdown(label="Study plan", elem_id="progress-plan")
    refresh_btn = gr.Button("Refresh", elem_id="progress-refresh")
    outputs = [mastery, chart, next_step, plan]
    refresh_btn.click(refresh, None, outputs, api_name="progress")
    return {"refresh": refresh, "outputs": outputs}
