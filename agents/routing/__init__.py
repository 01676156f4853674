"""Which tool a message asks for: the embedding classifier, native tool calling, training examples."""
