"""llmtutor.tools.backends."""
