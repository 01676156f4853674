"""The structured LLM Course catalog (tracks, modules, resources, notebooks, glossary).

`load_catalog()` validates `course/catalog.yaml` (pydantic, unknown fields rejected) into a
`Catalog` with small lookups. No LLM calls, no heavy imports: safe from any layer."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmtutor.errors import ConfigError
from llmtutor.knowledge import COURSE_DIR

DEFAULT_PATH = COURSE_DIR / "catalog.yaml"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~6x faster, same safety

ResourceKind = Literal[
    "article",
    "book",
    "course",
    "dataset",
    "documentation",
    "leaderboard",
    "model",
    "notebook",
    "paper",
    "repo",
    "tool",
    "video",
    "website",
]
NotebookCategory = Literal["tools", "fine-tuning", "quantization", "other"]


def _https_or_none(url: str | None) -> str | None:
    if url is not None and (not url.startswith("https://") or any(c.isspace() for c in url)):
        raise ValueError(f"URL must be an https:// URL without spaces or null, got {url!r}")
    return url


HttpsUrl = Annotated[str | None, AfterValidator(_https_or_none)]


def _norm(text: str) -> str:
    """Casefolded, NFKC-normalised (full-width -> ASCII), whitespace removed."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, str_min_length=1)


class Resource(_Strict):
    title: str
    author: str | None = None
    url: HttpsUrl
    kind: ResourceKind


class _Titled(_Strict):
    order: int = Field(ge=1)
    title: str
    title_zh: str
    aliases: list[str] = []  # other titles (seed translations, abbreviations) for find_module
    summary: str
    summary_zh: str


class Module(_Titled):
    id: str = Field(pattern=r"^[a-z]+\.[a-z0-9-]+$")
    topics: list[str] = Field(min_length=1)
    topics_zh: list[str] = Field(min_length=1)
    resources: list[Resource] = Field(min_length=1)  # the module's resource list, in course order
    references: list[Resource] = []  # papers/tools linked from the key-idea bullets
    legacy_resources: list[Resource] = []  # listed only by the earlier edition of the course

    @property
    def track(self) -> str:
        return self.id.split(".", 1)[0]

    @model_validator(mode="after")
    def _topics_pair_up(self) -> Module:
        if len(self.topics) != len(self.topics_zh):
            raise ValueError(f"topics has {len(self.topics)} items, topics_zh {len(self.topics_zh)}")
        return self


class Track(_Titled):
    id: Literal["fundamentals", "scientist", "engineer"]
    modules: list[Module] = Field(min_length=1)


class Notebook(_Strict):
    name: str
    category: NotebookCategory
    aliases: list[str] = []
    description: str
    description_zh: str
    article_url: HttpsUrl = None
    colab_url: HttpsUrl = None
    repo_url: HttpsUrl = None
    modules: list[str] = []  # related module ids


class GlossaryTerm(_Strict):
    en: str
    zh: str
    en_alt: list[str] = []  # abbreviations and spelling variants
    zh_alt: list[str] = []  # Traditional Chinese and other spellings (those in the seeds first)
    definition: str
    modules: list[str] = Field(min_length=1)

    def spellings(self) -> tuple[str, ...]:
        return (self.en, *self.en_alt, self.zh, *self.zh_alt)


class CourseInfo(_Strict):
    title: str
    title_zh: str
    author: str
    url: HttpsUrl
    edition: str  # which README snapshot the catalog follows
    edition_notes: list[str] = []  # how the earlier edition in the seeds differs


class Catalog(_Strict):
    course: CourseInfo
    tracks: list[Track] = Field(min_length=1)
    notebooks: list[Notebook] = Field(min_length=1)
    legacy_notebooks: list[Notebook] = []
    glossary: list[GlossaryTerm] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        _contiguous("tracks", [t.order for t in self.tracks])
        ids: set[str] = set()
        for ti, track in enumerate(self.tracks):
            _contiguous(f"tracks[{ti}].modules", [m.order for m in track.modules])
            for mi, mod in enumerate(track.modules):
                if mod.track != track.id or mod.id in ids:
                    raise ValueError(
                        f"tracks[{ti}].modules[{mi}].id: {mod.id!r} is duplicated or lacks '{track.id}.'"
                    )
                ids.add(mod.id)
        seen: dict[str, str] = {}
        books = [(f"notebooks[{i}]", nb) for i, nb in enumerate(self.notebooks)]
        books += [(f"legacy_notebooks[{i}]", nb) for i, nb in enumerate(self.legacy_notebooks)]
        for where, nb in books:
            _known_modules(f"{where}.modules", nb.modules, ids)
            _unique(f"{where}.name", {_norm(nb.name)}, seen)
        for i, term in enumerate(self.glossary):
            _known_modules(f"glossary[{i}].modules", term.modules, ids)
            _unique(f"glossary[{i}]", {"term:" + _norm(k) for k in term.spellings()}, seen)
        return self

    def modules(self) -> list[Module]:
        """All modules in course order (track order, then module order)."""
        tracks = sorted(self.tracks, key=lambda t: t.order)
        return [m for t in tracks for m in sorted(t.modules, key=lambda m: m.order)]

    def module(self, module_id: str) -> Module:
        """The module with this id; KeyError listing the known ids otherwise."""
        if found := next((m for m in self.modules() if m.id == module_id), None):
            return found
        raise KeyError(f"no course module {module_id!r}; known: {', '.join(m.id for m in self.modules())}")

    def find_module(self, text: str) -> Module | None:
        """The module whose id, code ("2.7"), English/Chinese title or alias matches `text`.

        Case/width/space-insensitive. Exact match first; then `text` inside a title (shortest
        title wins); then a title inside `text` (longest wins). None when nothing matches."""
        query = _norm(text)
        if not query:
            return None
        orders = {t.id: t.order for t in self.tracks}
        names: list[tuple[str, Module]] = []
        for mod in self.modules():
            if query in (_norm(mod.id), f"{orders[mod.track]}.{mod.order}"):
                return mod
            names += [(_norm(n), mod) for n in (mod.title, mod.title_zh, *mod.aliases)]
        if exact := [mod for name, mod in names if name == query]:
            return exact[0]
        if inside := [(len(name), mod) for name, mod in names if len(query) >= 2 and query in name]:
            return min(inside, key=lambda x: x[0])[1]
        mentioned = [(len(name), mod) for name, mod in names if len(name) >= 2 and name in query]
        return max(mentioned, key=lambda x: x[0])[1] if mentioned else None

    def notebook(self, name: str) -> Notebook | None:
        """A notebook (current or legacy) by name or alias, case-insensitive."""
        query = _norm(name)
        books = (*self.notebooks, *self.legacy_notebooks)
        return next((nb for nb in books if query in {_norm(n) for n in (nb.name, *nb.aliases)}), None)

    def resources(self) -> Iterator[tuple[Module, Resource]]:
        """Every listed resource with its module, in course order."""
        yield from ((mod, res) for mod in self.modules() for res in mod.resources)

    def glossary_map(self) -> dict[str, str]:
        """English -> Chinese and Chinese -> English, every spelling mapped to the primary term.

        English keys are lower-cased: m["quantization"] == "量化"; m["投機解碼"] == "speculative decoding"."""
        pairs = {en.casefold(): t.zh for t in self.glossary for en in (t.en, *t.en_alt)}
        pairs.update({zh: t.en for t in self.glossary for zh in (t.zh, *t.zh_alt)})
        return pairs

    def term(self, text: str) -> GlossaryTerm | None:
        """The glossary entry with `text` as any of its English or Chinese spellings."""
        query = _norm(text)
        return next((t for t in self.glossary if query in {_norm(k) for k in t.spellings()}), None)


def _contiguous(where: str, orders: list[int]) -> None:
    if sorted(orders) != list(range(1, len(orders) + 1)):
        raise ValueError(f"{where}: orders must be 1..{len(orders)} without gaps, got {orders}")


def _unique(where: str, keys: set[str], seen: dict[str, str]) -> None:
    for key in keys:
        if key in seen:
            raise ValueError(f"{where}: {key.removeprefix('term:')!r} is already used by {seen[key]}")
        seen[key] = where


def _known_modules(where: str, module_ids: list[str], known: set[str]) -> None:
    if unknown := [m for m in module_ids if m not in known]:
        raise ValueError(f"{where}: unknown module id(s) {unknown}")


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate the catalog YAML (default: the bundled one, parsed once per process).

    Raises ConfigError naming the file and the offending field when it is missing,
    not YAML, or does not validate.
    """
    return _load_default() if path is None else _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> Catalog:
    return _load(DEFAULT_PATH)


def _load(path: Path) -> Catalog:
    hint = "fix the named field; the bundled knowledge/course/catalog.yaml shows the format"
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read course catalog {path}: {exc}", "check the path and the YAML") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"course catalog {path}: top level must be a mapping", hint)
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        errs = [f"{'.'.join(map(str, e['loc'])) or 'catalog'}: {e['msg']}" for e in exc.errors()]
        problems = "; ".join(errs[:5])
        more = f" (+{len(errs) - 5} more)" if len(errs) > 5 else ""
        raise ConfigError(f"invalid course catalog {path}: {problems}{more}", hint) from exc
