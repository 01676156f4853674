"""The course: retrieval (`rag`), the catalog and course database with text-to-SQL (`catalog`),
quizzes (`quiz`). No model is called in here except through a backend passed in."""

from pathlib import Path

# The bundled course: catalog.yaml, the notes, the text-to-SQL dev sets.
COURSE_DIR = Path(__file__).resolve().parent / "course"
NOTES_DIR = COURSE_DIR / "notes"
