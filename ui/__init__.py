"""llmtutor.ui."""
