"""Quizzes: the question bank, grading, sessions on disk, optional LLM help (through an injected model)."""
