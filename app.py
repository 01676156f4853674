"""Hugging Face Spaces entry point: the same Gradio app as `llmtutor ui`, as a public demo
(each visitor their own learner; only tiny jobs on the bundled model; outputs expire)."""

import os

os.environ.setdefault("LLMTUTOR_PUBLIC_DEMO", "1")  # before the settings are read

from llmtutor.ui.gradio_app import launch  # noqa: E402

if __name__ == "__main__":
    launch(host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), port=int(os.environ.get("PORT", "7860")))
