"""Models, outputs and files belong to a learner. On a shared server (learner ids other than
"local") another learner's model name is an unknown name, their paths are outside the workspace,
"latest" and listings are the learner's own, and a job's results land in its learner's space and
registry; the local learner of a single-user workspace keeps workspace/models and outputs."""

from __future__ import annotations

import json
from pathlib import Path

import job_demo  # noqa: F401 - registers the "demo" job kind
import pytest
from fakes import FakeBackend
from fastapi.testclient import TestClient
from langgraph.checkpoint.memory import InMemorySaver

from llmtutor import jobs as runner
from llmtutor.errors import ModelNotFoundError, ToolInputError
from llmtutor.model_registry import RegisteredModel, find_model, list_models, register_model, require_model
from llmtutor.paths import learner_space
from llmtutor.tools.registry import ToolContext, default_registry

ROWS = [{"instruction": f"Say {i}", "output": f"{i}"} for i in range(12)]
CONFIG = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}


def _own_model(ctx: ToolContext, name: str) -> Path:
    """A registered model folder in the learner's models/ (previews read config.json only)."""
    folder = ctx.models_dir / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    register_model(ctx.models_dir, RegisteredModel(name=name, path=str(folder), kind="merged"))
    return folder


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("shared")
    alice = ToolContext(workspace=workspace, learner_id="alice")
    bob = ToolContext(workspace=workspace, learner_id="bob")
    _own_model(alice, "alice-ft")
    data = alice.space / "data" / "train.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("\n".join(json.dumps(r) for r in ROWS), encoding="utf-8")
    return default_registry(), alice, bob


def _refusal(registry, tool: str, args: dict, ctx: ToolContext) -> str:
    spec = registry.get(tool)
    with pytest.raises(ToolInputError) as refused:
        spec.preview(spec.validate(args), ctx)
    return str(refused.value)


def _plan(registry, tool: str, args: dict, ctx: ToolContext) -> str:
    spec = registry.get(tool)
    return spec.preview(spec.validate(args), ctx)


def test_each_learner_has_a_space_and_the_local_learner_keeps_the_workspace(tmp_path):
    from llmtutor.knowledge.quiz.session import learner_space as quiz_space

    local = ToolContext(workspace=tmp_path)
    assert (local.space, local.models_dir, local.outputs_dir) == (
        tmp_path,
        tmp_path / "models",
        tmp_path / "outputs",
    )
    alice = ToolContext(workspace=tmp_path, learner_id="alice")
    assert alice.models_dir == tmp_path / "learners" / "alice" / "models"
    assert alice.outputs_dir == tmp_path / "learners" / "alice" / "outputs"
    assert quiz_space(tmp_path, "alice") == alice.space  # quizzes live in the same space
    for bad in ("../alice", "a/b", "", "x" * 65):
        with pytest.raises(ToolInputError, match="invalid learner id"):
            learner_space(tmp_path, bad)


def test_the_bundled_models_conversion_is_shared_by_every_learner(tmp_path):
    from llmtutor.hf_models import DEFAULT_HF_FOLDER, default_hf_dir

    # One 540 MB conversion for everyone, however learners are kept (users.sqlite, Postgres, the
    # public demo's visitors): only a learner's own models/ in the learner_space layout shares it.
    for learner in ("alice", "demo_abc123"):
        space = ToolContext(workspace=tmp_path, learner_id=learner)
        assert default_hf_dir(space.models_dir) == tmp_path / "models" / DEFAULT_HF_FOLDER
    assert default_hf_dir(tmp_path / "models") == tmp_path / "models" / DEFAULT_HF_FOLDER
    elsewhere = tmp_path / "projects" / "learners" / "x" / "other"
    assert default_hf_dir(elsewhere) == elsewhere / DEFAULT_HF_FOLDER


# ----- names ---------------------------------------------------------------------------------
NAMED = [
    ("evaluate_model", lambda name: {"models": ["base", name], "metrics": ["perplexity"]}),
    ("merge_models", lambda name: {"method": "slerp", "models": ["base", name]}),
    ("quantize_model", lambda name: {"model": name, "methods": ["absmax"]}),
    ("finetune_model", lambda name: {"dataset": "course", "base_model": name, "max_steps": 1}),
    ("compare_decoding", lambda name: {"model": name, "prompt": "Hi", "max_new_tokens": 1}),
]


@pytest.mark.parametrize(("tool", "args"), NAMED, ids=[t for t, _ in NAMED])
def test_another_learners_model_name_is_an_unknown_name(shared, tool, args):
    registry, _, bob = shared
    if tool == "compare_decoding":  # not expensive: no preview, the check runs with the tool
        spec = registry.get(tool)
        messages = []
        for name in ("alice-ft", "nobodys-ft"):
            with pytest.raises(ToolInputError) as refused:
                spec.run(args(name), bob)
            messages.append(str(refused.value).replace(name, "NAME"))
        assert messages[0] == messages[1]
        return
    theirs = _refusal(registry, tool, args("alice-ft"), bob)
    unknown = _refusal(registry, tool, args("nobodys-ft"), bob)
    assert theirs.replace("alice-ft", "NAME") == unknown.replace("nobodys-ft", "NAME")
    assert "not a registered model" in theirs


def test_the_owner_resolves_her_model_by_name_and_as_latest(shared):
    from llmtutor.tools.merge_models import resolve_ref

    registry, alice, bob = shared
    assert resolve_ref("latest", alice) == "alice-ft"
    assert "alice-ft" in _plan(registry, "evaluate_model", {"models": ["base", "alice-ft"]}, alice)
    assert "alice-ft" in _plan(registry, "evaluate_model", {"models": ["base", "latest"]}, alice)
    assert "alice-ft" in _plan(registry, "quantize_model", {"model": "latest", "methods": ["absmax"]}, alice)
    # bob has no model: "latest" is none of alice's
    with pytest.raises(ToolInputError, match="no model of yours"):
        resolve_ref("latest", bob)
    for tool, args in (
        ("evaluate_model", {"models": ["base", "latest"], "metrics": ["perplexity"]}),
        ("merge_models", {"method": "slerp", "models": ["base", "latest"]}),
    ):
        assert "no model of yours" in _refusal(registry, tool, args, bob)
    plan = _plan(registry, "quantize_model", {"model": "latest", "methods": ["absmax"]}, bob)
    assert "bundled" in plan and "alice" not in plan


def test_listings_and_known_names_are_the_learners_own(shared):
    from llmtutor.hf_models import _local_choices

    _, alice, bob = shared
    assert [m.name for m in list_models(alice.models_dir)] == ["alice-ft"]
    assert list_models(bob.models_dir) == [] and list_models(bob.workspace / "models") == []
    with pytest.raises(ModelNotFoundError) as missing:
        require_model(bob.models_dir, "alice-ft")
    assert "known: none yet" in str(missing.value)
    assert "alice" not in _local_choices(bob.models_dir)


# ----- paths ---------------------------------------------------------------------------------
def _their_paths(alice: ToolContext) -> list[str]:
    workspace = alice.workspace
    return [
        "../alice/data/train.jsonl",
        "../../learners/alice/data/train.jsonl",
        str(alice.space / "data" / "train.jsonl"),
        str(alice.models_dir / "alice-ft"),
        str(workspace / "models"),
        str(workspace / "jobs.sqlite"),
    ]


def _swap(args: dict, old: str, new: str) -> dict:
    return {
        k: [new if x == old else x for x in v] if isinstance(v, list) else (new if v == old else v)
        for k, v in args.items()
    }


@pytest.mark.parametrize("index", range(6))
def test_another_learners_paths_are_outside_the_workspace(shared, index):
    registry, alice, bob = shared
    value = _their_paths(alice)[index]
    for tool, args in (
        ("finetune_model", {"dataset": value, "max_steps": 1}),
        ("evaluate_model", {"models": ["base", value], "metrics": ["perplexity"]}),
        ("evaluate_model", {"models": ["base"], "metrics": ["perplexity"], "text": value}),
        ("merge_models", {"method": "slerp", "models": ["base", value]}),
        ("quantize_model", {"model": value, "methods": ["absmax"]}),
    ):
        message = _refusal(registry, tool, args, bob)
        assert "outside the workspace" in message, (tool, message)
        # an existing file of alice's and a missing one get the same refusal
        missing = str(Path(value).with_name("no-such-file.jsonl"))
        absent = _refusal(registry, tool, _swap(args, value, missing), bob)
        assert message.replace(value, "P") == absent.replace(missing, "P")
    with pytest.raises(ToolInputError, match="outside the workspace"):
        registry.get("estimate_memory").run(
            {"config_path": str(alice.models_dir / "alice-ft" / "config.json")}, bob
        )


def test_the_owner_trains_on_her_own_file_by_its_path_in_her_space(shared):
    registry, alice, bob = shared
    plan = _plan(registry, "finetune_model", {"dataset": "data/train.jsonl", "max_steps": 1}, alice)
    assert "train.jsonl" in plan
    # the same relative path from bob's space is a file bob does not have
    assert "does not exist" in _refusal(
        registry, "finetune_model", {"dataset": "data/train.jsonl", "max_steps": 1}, bob
    )


# ----- jobs ----------------------------------------------------------------------------------
def test_a_learners_job_lands_in_her_outputs_and_only_her_registry(tmp_path):
    alice = ToolContext(workspace=tmp_path, learner_id="alice")
    bob = ToolContext(workspace=tmp_path, learner_id="bob")
    job_id = runner.submit(
        tmp_path, "demo", {"steps": 1, "sleep_s": 0, "result_name": "alice-demo"}, learner_id="alice"
    )
    job = runner.wait(tmp_path, job_id, timeout=60, poll_s=0.1)
    assert job.status == "succeeded", runner.tail_log(tmp_path, job_id)
    assert Path(job.output_dir or "") == alice.outputs_dir / "alice-demo"
    assert (alice.outputs_dir / "alice-demo" / "report.json").is_file()
    registered = find_model(alice.models_dir, "alice-demo")
    assert registered is not None and registered.job_id == job_id
    assert Path(registered.path).is_relative_to(alice.outputs_dir)
    assert find_model(bob.models_dir, "alice-demo") is None
    assert not (tmp_path / "models").exists() and not (tmp_path / "outputs").exists()
    assert runner.learner_usage(tmp_path, "alice") > 0 == runner.learner_usage(tmp_path, "bob")
    # bob's evaluation of it is an unknown name
    registry = default_registry()
    message = _refusal(registry, "evaluate_model", {"models": ["base", "alice-demo"]}, bob)
    assert "not a registered model" in message


def test_the_worker_registers_a_shared_learners_model_in_her_registry_whatever_the_config(tmp_path):
    from types import SimpleNamespace

    from llmtutor.jobs.worker import _register

    result = SimpleNamespace(registration={"name": "made", "path": ""})
    final = tmp_path / "learners" / "alice" / "outputs" / "made"
    elsewhere = SimpleNamespace(models_dir=tmp_path / "models")  # a config naming the shared registry
    assert _register(tmp_path, "j1", elsewhere, result, final, "alice") == "made"
    assert find_model(learner_space(tmp_path, "alice") / "models", "made") is not None
    assert list_models(tmp_path / "models") == []
    # the local learner: the config's registry, as before
    assert _register(tmp_path, "j2", elsewhere, result, tmp_path / "outputs" / "made") == "made"
    assert find_model(tmp_path / "models", "made") is not None


def test_the_local_learners_job_stays_in_the_workspace(tmp_path):
    job_id = runner.submit(tmp_path, "demo", {"steps": 1, "sleep_s": 0, "result_name": "mine"})
    job = runner.wait(tmp_path, job_id, timeout=60, poll_s=0.1)
    assert job.status == "succeeded", runner.tail_log(tmp_path, job_id)
    assert Path(job.output_dir or "") == tmp_path / "outputs" / "mine"
    assert find_model(tmp_path / "models", "mine") is not None
    assert not (tmp_path / "learners").exists()


# ----- over HTTP and in chat -----------------------------------------------------------------
class _EvaluateRouter:
    """Routes 'evaluate NAME' to evaluate_model on the base model and NAME."""

    def parse_command(self, text: str):
        return None

    def route(self, text: str):
        from llmtutor.agents.routing.router import RouteDecision

        if text.startswith("evaluate "):
            args = {"models": ["base", text.split()[1]], "metrics": ["perplexity"]}
            return RouteDecision(tool="evaluate_model", args=args, confidence=1.0, method="classifier")
        return RouteDecision(tool=None, args={}, confidence=1.0, method="classifier")

    def route_batch(self, texts):
        return [self.route(t) for t in texts]


@pytest.fixture()
def server(tmp_path):
    from llmtutor.agents.tutor import Tutor
    from llmtutor.settings import Settings
    from llmtutor.tools.evaluate_model import TOOL as EVALUATE
    from llmtutor.tools.merge_models import TOOL as MERGE
    from llmtutor.tools.registry import ToolRegistry
    from llmtutor.ui.http.server import create_app
    from llmtutor.users import add_user

    tutor = Tutor(
        Settings(workspace=tmp_path),
        backend=FakeBackend(["ok"] * 20),
        registry=ToolRegistry([EVALUATE, MERGE]),
        router=_EvaluateRouter(),
        checkpointer=InMemorySaver(),
    )
    ana, ana_key = add_user(tutor.settings.users_db, "ana")
    _, bo_key = add_user(tutor.settings.users_db, "bo")
    _own_model(ToolContext(workspace=tmp_path, learner_id=ana.id), "ana-ft")
    client = TestClient(create_app(tutor), raise_server_exceptions=False)
    keys = {"ana": {"Authorization": f"Bearer {ana_key}"}, "bo": {"Authorization": f"Bearer {bo_key}"}}
    return client, keys


def test_over_http_another_learners_model_is_an_unknown_model(server):
    client, keys = server
    for tool, args in (
        ("evaluate_model", lambda name: {"models": ["base", name], "metrics": ["perplexity"]}),
        ("merge_models", lambda name: {"method": "slerp", "models": ["base", name]}),
    ):
        theirs = client.post(f"/tools/{tool}", json=args("ana-ft"), headers=keys["bo"])
        unknown = client.post(f"/tools/{tool}", json=args("nobodys-ft"), headers=keys["bo"])
        assert theirs.status_code == unknown.status_code == 422, theirs.text
        assert theirs.text.replace("ana-ft", "NAME") == unknown.text.replace("nobodys-ft", "NAME")
    own = client.post("/tools/evaluate_model", json={"models": ["base", "ana-ft"]}, headers=keys["ana"])
    assert own.status_code == 202 and "ana-ft" in own.json()["plan"]


def test_in_chat_the_plan_resolves_names_in_the_learners_own_space(server):
    client, keys = server
    own = client.post("/ask", json={"message": "evaluate ana-ft"}, headers=keys["ana"]).json()
    assert own["pending_approval"] and "ana-ft" in own["pending_approval"]["plan"]
    theirs = client.post("/ask", json={"message": "evaluate ana-ft"}, headers=keys["bo"]).json()
    assert not theirs.get("pending_approval")
    assert "not a registered model" in json.dumps(theirs)
