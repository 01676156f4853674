"""llmtutor.tools."""
