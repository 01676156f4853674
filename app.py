"""Hugging Face Spaces entry point: the same Gradio app as `llmtutor ui`."""

import os

from llmtutor.ui.gradio_app import launch

if __name__ == "__main__":
    launch(host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), port=int(os.environ.get("PORT", "7860")))
