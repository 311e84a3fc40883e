"""The contracts every layer speaks: what a question, a passage, a generation, a trajectory and an
experience hook are. They sit at the bottom and import nothing of hiexp but ``errors``, so that ``data``,
``search``, ``llm``, ``agent``, ``experience``, ``eval`` and ``train`` can depend on them without depending
on one another (see docs/architecture.md).
"""

from hiexp.contracts.example import Example
from hiexp.contracts.experience import Embedder, ExperienceHook, Injection
from hiexp.contracts.generation import Generation, Generator, SamplingParams, derive_seed
from hiexp.contracts.passage import Passage, Retriever, check_queries, render_passages
from hiexp.contracts.trajectory import FINISH_REASONS, SCHEMA_VERSION, Trajectory, Turn

__all__ = [
    "Embedder", "Example", "ExperienceHook", "FINISH_REASONS", "Generation", "Generator", "Injection", "Passage",
    "Retriever", "SCHEMA_VERSION", "SamplingParams", "Trajectory", "Turn", "check_queries", "derive_seed",
    "render_passages",
]
