# Copyright (c) soft_mm contributors. All rights reserved.
"""Save every rank's RNG state in checkpoints and restore it on resume."""
from typing import Optional

from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from .rng_state import get_rng_state, set_rng_state

# Checkpoint key of the saved states: a list indexed by rank.
CKPT_KEY = 'rng_states'


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Make ``--resume`` continue the random streams of the interrupted run.

    mmengine checkpoints hold the model, optimizer, schedulers, message hub
    and (with ``EMAHook``) the EMA weights, but not the RNG state: a resumed
    run re-seeds and draws different augmentations, mixup pairs and drop
    paths than the run it replaces. This hook

    - gathers every rank's Python / NumPy / torch / accelerator RNG state at
      the end of each training epoch (all ranks take part; before
      ``CheckpointHook``, which has the lowest priority) and writes the list
      into the checkpoint as ``rng_states``;
    - on resume, puts each rank's own state back just before training
      continues;
    - keeps validation from drawing on the training streams (the states are
      put back after each validation), so the stream at the start of an
      epoch is the one saved in the previous epoch's checkpoint whether or
      not the run was interrupted and whether or not it validated.

    A resumed run with the same number of processes therefore sees the same
    random numbers as an uninterrupted one. With another world size the
    saved states cannot be matched to ranks: they are ignored with a
    warning. For iteration-based loops the states are taken at the moment
    of saving on rank 0 only (no collective there); other ranks then keep
    their fresh streams.
    """

    # Above CheckpointHook (VERY_LOW), so the states are fresh when it saves.
    priority = 'NORMAL'

    def __init__(self) -> None:
        self._gathered: Optional[list] = None
        self._gathered_at: Optional[int] = None
        self._to_restore: Optional[list] = None
        self._val_saved: Optional[dict] = None

    def after_train_epoch(self, runner) -> None:
        self.gather(runner)

    def gather(self, runner) -> None:
        """Gather all ranks' states for the next checkpoint (a collective:
        every rank calls it; ``PreemptionHook`` does before its save).
        During a validation inside training the training streams are the
        ones saved before it."""
        states = (self._val_saved if self._val_saved is not None else
                  get_rng_state())
        if get_world_size() > 1:
            self._gathered = all_gather_object(states)
        else:
            self._gathered = [states]
        self._gathered_at = runner.iter

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the gathered states (runs on rank 0 only)."""
        if self._gathered is not None and self._gathered_at == runner.iter:
            checkpoint[CKPT_KEY] = self._gathered
        else:
            checkpoint[CKPT_KEY] = [get_rng_state()]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the states; they are applied in :meth:`before_train`.

        Runner.resume re-seeds after loading when the config's seed differs
        from the checkpoint's, so applying them here would be undone.
        """
        if not getattr(runner, '_resume', False):
            return  # load_from (weights only): fresh streams are right
        states = checkpoint.get(CKPT_KEY)
        if states is None:
            print_log(
                'RNGStateHook: the checkpoint has no RNG state (saved '
                'without this hook); the resumed run draws fresh random '
                'numbers', logger='current', level=30)
            return
        self._to_restore = list(states)

    def before_train(self, runner) -> None:
        if self._to_restore is None:
            return
        states, self._to_restore = self._to_restore, None
        rank, world_size = get_rank(), get_world_size()
        if len(states) == world_size:
            set_rng_state(states[rank])
        elif len(states) == 1 and rank == 0:
            set_rng_state(states[0])
        else:
            print_log(
                f'RNGStateHook: the checkpoint holds RNG states of '
                f'{len(states)} processes but this run has {world_size}; '
                'random streams are not restored', logger='current',
                level=30)
            return
        print_log(
            f'RNGStateHook: restored the RNG state of rank {rank}',
            logger='current')

    def before_val(self, runner) -> None:
        # Only inside training: a stand-alone val/test has nothing to keep.
        if _training(runner):
            self._val_saved = get_rng_state()

    def after_val(self, runner) -> None:
        if self._val_saved is not None:
            set_rng_state(self._val_saved)
            self._val_saved = None


def _training(runner) -> bool:
    # runner.train_loop builds the loop on first access; only look at it
    # when it has been built already (a training run).
    from mmengine.runner import BaseLoop
    return isinstance(getattr(runner, '_train_loop', None), BaseLoop)
