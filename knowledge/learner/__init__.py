"""The learner model: the course concept graph, knowledge tracing and spaced review. The graph
(`graph.load_concept_graph()`, data in `concepts.yaml`) says which modules and concepts come
before which and which glossary terms belong to each concept; tracing and review build on it."""
