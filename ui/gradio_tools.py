"""The Gradio app's "Tools" tab: any registered tool from its name and JSON arguments.

An expensive tool goes through the same plan → approve step as the chat and the HTTP API, for
every learner (the local one and admins too): Run shows its plan and starts nothing; "Approve and
run" runs it, once, for the learner, tool and arguments the plan was shown for (changed arguments
get a new plan). Cheap tools run at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmtutor.errors import LLMTutorError, user_message
from llmtutor.paths import for_display
from llmtutor.text import clean_display_text
from llmtutor.ui.approvals import Approvals, tool_plan

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor
    from llmtutor.users import User

CHANGED = (
    "_The tool or its arguments changed since the plan, or that plan was already used: "
    "this is the plan for them now._\n\n"
)


def tools_tab(demo: Any, tutor: Tutor, learner: Callable[[Any], User], with_request: Callable) -> None:
    """The tab's components and events; called inside the app's `gr.Tab("Tools")`."""
    import gradio as gr

    approvals = Approvals()  # this app's plans (the HTTP server keeps its own)
    hidden = gr.update(visible=False)

    def parse(args_json: str) -> dict[str, Any]:
        args = json.loads(args_json or "{}")
        if not isinstance(args, dict):
            raise LLMTutorError("arguments must be a JSON object", 'e.g. {"model": "7B"}')
        return args

    def show_plan(user: User, name: str, args: dict[str, Any], note: str = ""):
        """The plan to approve; nothing runs. A run that cannot work raises here (its typed error)."""
        plan = clean_display_text(tool_plan(tutor, name, args, user.id))
        question = (
            f"**{name}** is an expensive tool (it may run for minutes and write files). Nothing has "
            f"started: **Approve and run** runs it with `{json.dumps(args, ensure_ascii=False)}`."
        )
        state = {"approval_id": approvals.issue(user.id, name, args), "tool": name}
        return note + (f"{plan}\n\n{question}" if plan else question), None, state, gr.update(visible=True)

    def run_now(user: User, name: str, args: dict[str, Any]):
        from llmtutor.tools.registry import output_images, render_markdown

        output = tutor.run_tool(name, args, learner_id=user.id)
        shown = [for_display(image, tutor.settings.workspace) for image in output_images(output)]
        shown = [str(path) for path in shown if path is not None]
        return render_markdown(output), shown[0] if shown else None, None, hidden

    def at_the_edge(step: Callable[[], tuple]) -> tuple:
        """Typed errors become the learner's text here, once; any plan on screen is dropped."""
        try:
            return step()
        except json.JSONDecodeError as exc:
            return f"Error: arguments are not valid JSON ({exc})", None, None, hidden
        except LLMTutorError as exc:
            return user_message(exc), None, None, hidden

    def withdraw(plan: dict[str, Any] | None, user: User) -> None:
        if plan:
            approvals.withdraw(plan["approval_id"], user.id)

    @with_request
    def run_tool(name: str, args_json: str, plan: dict[str, Any] | None = None, request=None):
        def step():
            args = parse(args_json)
            user = learner(request)
            withdraw(plan, user)  # a new Run replaces the plan on screen
            tutor.guard(name, args)  # the public demo's limits, for admins too
            if tutor.registry.get(name).expensive:
                return show_plan(user, name, args)
            return run_now(user, name, args)

        return at_the_edge(step)

    @with_request
    def approve_tool(name: str, args_json: str, plan: dict[str, Any] | None = None, request=None):
        def step():
            if not plan:
                return "Nothing to approve: press **Run** to see the plan first.", None, None, hidden
            args = parse(args_json)
            user = learner(request)
            tutor.guard(name, args)
            if approvals.redeem(plan["approval_id"], user.id, name, args):
                return run_now(user, name, args)
            # Not what was approved (other arguments or tool, another learner, used, expired).
            withdraw(plan, user)
            if tutor.registry.get(name).expensive:
                return show_plan(user, name, args, note=CHANGED)
            return f"{name} is not an expensive tool: press **Run** to run it.", None, None, hidden

        return at_the_edge(step)

    @with_request
    def cancel_tool(plan: dict[str, Any] | None = None, request=None):
        try:
            withdraw(plan, learner(request))
        except LLMTutorError as exc:
            return user_message(exc), None, hidden
        return "Cancelled: nothing was run.", None, hidden

    def tool_template(name: str):
        tool = tutor.registry.get(name)
        example = tool.extract_args(tool.examples[0]) if tool.extract_args and tool.examples else {}
        return json.dumps(
            example, ensure_ascii=False, indent=2
        ), f"{tool.description}\n\nFields: " + ", ".join(tool.input_schema().get("properties", {}))

    names = tutor.registry.names()
    plan_state = gr.State(None)  # {"approval_id", "tool"} of the plan on screen
    tool_name = gr.Dropdown(names, value=names[0] if names else None, label="Tool")
    tool_help = gr.Markdown()
    tool_args = gr.Code(language="json", label="Arguments (JSON)")
    run_btn = gr.Button("Run", variant="primary")
    tool_out = gr.Markdown(label="Result")
    with gr.Row(visible=False) as approval_row:
        approve_btn = gr.Button("Approve and run", variant="primary")
        cancel_btn = gr.Button("Cancel", variant="stop")
    tool_plot = gr.Image(label="Plot", type="filepath", interactive=False)

    outputs = [tool_out, tool_plot, plan_state, approval_row]
    # Filling the form is the page's own business: no API endpoint (gradio_client users call run_tool).
    tool_name.change(tool_template, tool_name, [tool_args, tool_help], api_visibility="private")
    demo.load(tool_template, tool_name, [tool_args, tool_help], api_visibility="private")
    run_btn.click(run_tool, [tool_name, tool_args, plan_state], outputs, api_name="run_tool")
    approve_btn.click(approve_tool, [tool_name, tool_args, plan_state], outputs, api_name="approve_tool")
    cancel_btn.click(cancel_tool, [plan_state], [tool_out, plan_state, approval_row], api_name="cancel_tool")
