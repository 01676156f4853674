from llmtutor.agents.grounding import drop_off_topic_sentences, drop_ungrounded_sentences

RESULT = "| weights | 5.47 GiB |\n| total | 14.61 GiB |\nFits a 16 GB GPU. 8.03e9 params."


def test_invented_numbers_are_dropped_and_real_ones_kept():
    explanation = (
        "Llama 3 8B needs 1.05E-7 GB of memory. The total is 14.61 GiB, so a 16 GB card works. Great!"
    )
    assert (
        drop_ungrounded_sentences(explanation, RESULT)
        == "The total is 14.61 GiB, so a 16 GB card works. Great!"
    )


def test_rounded_figures_and_small_integers_are_fine():
    text = "About 14.6 GiB in total. Use 2 GPUs if you like. 它需要 99 GB 显存。权重占 5.47 GiB。"
    assert (
        drop_ungrounded_sentences(text, RESULT)
        == "About 14.6 GiB in total. Use 2 GPUs if you like. 权重占 5.47 GiB。"
    )


def test_numbers_from_the_request_count_as_grounded():
    assert drop_ungrounded_sentences("With 4096 tokens of context it fits.", RESULT, "context 4096") == (
        "With 4096 tokens of context it fits."
    )
    assert drop_ungrounded_sentences("It needs 123 GB.", RESULT) == ""


def test_sentences_mostly_of_terms_the_sources_never_use_are_dropped():
    result = "Mistral-7B in fp16 needs 14.61 GiB: weights 13.5 GiB, KV cache 0.5 GiB. Fits a 16 GB GPU."
    text = (
        "Mistral-7B in fp16 needs about 14.6 GiB, so it fits a 16 GB GPU. "
        "Yes, you can run Mistral-7A (FloPilot-8) on FPGAs with custom drivers."
    )
    kept = drop_off_topic_sentences(text, result, "Can I run Mistral-7B in fp16 on a 16 GB GPU?")
    assert kept == "Mistral-7B in fp16 needs about 14.6 GiB, so it fits a 16 GB GPU."
