"""The multi-turn search agent, its action formats, trajectories and rollouts."""

from hiexp.agent.config import AgentConfig
from hiexp.agent.loop import SearchAgent, episode_seed
from hiexp.contracts.experience import ExperienceHook, Injection
from hiexp.contracts.trajectory import Trajectory, Turn

__all__ = ["AgentConfig", "ExperienceHook", "Injection", "SearchAgent", "Trajectory", "Turn", "episode_seed"]
