"""llmtutor.knowledge."""
