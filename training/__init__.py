"""llmtutor.training."""
