"""The trainer's callbacks: the HEK stamp on every checkpoint, a clean stop on Ctrl-C, a rich progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hiexp.train.checkpoints import write_checkpoint_state
from hiexp.train.config import TrainConfig


class CheckpointStamp(TrainerCallback):
    """After each checkpoint is saved, write hiexp's state (HEK version, config, step) into it. ``hek_state``
    (a ``refresh.HEKState``) is read at every save, so a refreshed HEK is what the checkpoint records."""

    def __init__(self, config: TrainConfig, hek_version: str | None, hek_state: Any = None):
        self.config = config
        self.hek_version = hek_version
        self.hek_state = hek_state

    def stamp(self, output_dir: str | Path, step: int) -> None:
        folder = Path(output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
        if folder.exists():
            if self.hek_state is not None:
                write_checkpoint_state(folder, self.config, self.hek_state.version, step, self.hek_state.to_dict())
            else:
                write_checkpoint_state(folder, self.config, self.hek_version, step)

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            self.stamp(args.output_dir, state.global_step)
        return control


class SaveOnInterrupt(TrainerCallback):
    """When ``handler.requested`` (a first Ctrl-C), save after this step and stop."""

    def __init__(self, handler: Any):
        self.handler = handler

    def on_step_end(self, args, state, control, **kwargs):
        if self.handler.requested:
            control.should_save = True
            control.should_training_stop = True
        return control


class RichProgress(TrainerCallback):
    """A rich progress bar over optimizer steps showing the last reward (instead of printed log dicts)."""

    def __init__(self) -> None:
        self.bar = None
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from hiexp.progress import progress_bar

            self.bar = progress_bar()
            self.bar.start()
            self.task = self.bar.add_task("train", total=state.max_steps, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "reward" in logs:
            self.bar.update(self.task, description=f"train (reward {float(logs['reward']):.3f})")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(self.task, completed=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
