"""llmtutor.agents."""
