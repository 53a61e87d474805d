# Copyright (c) soft_mm contributors. All rights reserved.
"""An epoch-based training loop that resumes inside an epoch."""
import logging

import torch
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader

#: Message-hub runtime info: batches of the current epoch trained so far.
BATCHES_DONE_KEY = 'soft_mm_batches_done_in_epoch'


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that continues a resumed run at
    the batch where it stopped.

    A checkpoint saved in the middle of an epoch (``PreemptionHook``, or a
    ``CheckpointHook`` by iteration) holds ``epoch`` = the unfinished epoch
    and ``iter`` = the iterations done. mmengine's loop would train that
    whole epoch again; this one skips the batches of it already trained,
    in the epoch's own order (the sampler's, seeded by epoch), without
    reading them, and passes the hooks the batch indices of an
    uninterrupted run. With the RNG states restored (``RNGStateHook``) the
    run then continues exactly as if it had not been interrupted. Every
    other epoch is mmengine's.

    How many batches of the epoch are done is what the loop recorded in
    the message hub (:data:`BATCHES_DONE_KEY`, saved with every checkpoint:
    0 at an epoch's end), not ``iter - epoch * len(dataloader)``: a run
    resumed with another batch size or number of processes has another
    number of batches per epoch, and that difference would skip batches.

    Arguments: those of ``EpochBasedTrainLoop``.
    """

    def batches_done_in_epoch(self) -> int:
        """Batches of the current epoch trained before this run started (0
        unless resumed from a checkpoint saved inside an epoch)."""
        done = self.runner.message_hub.get_info(BATCHES_DONE_KEY)
        if done is None:
            # A fresh run (0), or a checkpoint without the count (saved by
            # mmengine's loop or an earlier soft_mm): exact in the layout
            # that saved it, the only one --resume allows mid-epoch.
            return self._iter - self._epoch * len(self.dataloader)
        return int(done)

    def run_epoch(self) -> None:
        """Iterate one epoch, or what is left of it."""
        done, total = self.batches_done_in_epoch(), len(self.dataloader)
        if done < 0 or done > total:
            # Saved inside an epoch by a run with more batches per epoch
            # (another batch size or number of processes): the rest of
            # that epoch does not exist in this layout.
            print_log(
                f'ResumableEpochBasedTrainLoop: the checkpoint was saved '
                f'after batch {done} of epoch {self._epoch + 1}, which has '
                f'{total} batches in this run: training the whole epoch',
                logger='current', level=logging.WARNING)
            done = 0
        self.runner.call_hook('before_train_epoch')  # sets the epoch seed
        self.runner.model.train()
        if done == 0:
            batches = self.dataloader
        elif done == total:  # saved after the epoch's last batch
            batches = []
        else:
            batches = self._rest_of_epoch(done)
        for idx, data_batch in enumerate(batches, done):
            self.run_iter(idx, data_batch)
        # The epoch's checkpoint (saved by after_train_epoch hooks) starts
        # the next epoch at its first batch, whatever its layout.
        self._set_done(0)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_iter(self, idx, data_batch) -> None:
        # Counted before the iteration's hooks run: a checkpoint they save
        # (after_train_iter) holds this batch as done.
        self._set_done(idx + 1)
        super().run_iter(idx, data_batch)

    def _set_done(self, batches: int) -> None:
        self.runner.message_hub.update_info(BATCHES_DONE_KEY, batches)

    def _rest_of_epoch(self, done: int):
        """The batches after the first ``done`` of this epoch, from a loader
        that reads only them."""
        # An uninterrupted run drew its loader's base seed from torch's
        # RNG once, at the start of this epoch; the restored RNG state is
        # past that draw, so building and starting this loader must not
        # draw again.
        state = torch.get_rng_state()
        loader = self.dataloader
        batches = list(loader.batch_sampler)[done:]
        rest = DataLoader(
            loader.dataset,
            batch_sampler=batches,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context,
            generator=loader.generator,
            prefetch_factor=(loader.prefetch_factor
                             if loader.num_workers else None))
        iterator = iter(rest)
        torch.set_rng_state(state)
        return iterator
