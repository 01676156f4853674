"""Retrieval over the course: ingest, chunking, embeddings, the LanceDB index, hybrid search."""
