"""Retrieval: the Retriever contract, BM25 (default), dense and remote /retrieve backends."""

from hiexp.contracts.passage import Passage, Retriever, render_passages
from hiexp.search.loader import load_retriever

__all__ = ["Passage", "Retriever", "load_retriever", "render_passages"]
