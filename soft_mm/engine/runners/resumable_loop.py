# Copyright (c) soft_mm contributors. All rights reserved.
"""An epoch-based training loop that resumes inside an epoch."""
import torch
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that continues a resumed run at
    the batch where it stopped.

    A checkpoint saved in the middle of an epoch (``PreemptionHook``) holds
    ``epoch`` = the unfinished epoch and ``iter`` = the iterations done.
    mmengine's loop would train that whole epoch again; this one skips the
    ``iter - epoch * len(dataloader)`` batches already trained, in the
    epoch's own order (the sampler's, seeded by epoch), without reading
    them, and passes the hooks the batch indices of an uninterrupted run.
    With the RNG states restored (``RNGStateHook``) the run then continues
    exactly as if it had not been interrupted. Every other epoch is
    mmengine's.

    Arguments: those of ``EpochBasedTrainLoop``.
    """

    def batches_done_in_epoch(self) -> int:
        """Batches of the current epoch trained before this run started (0
        unless resumed from a mid-epoch checkpoint)."""
        return self._iter - self._epoch * len(self.dataloader)

    def run_epoch(self) -> None:
        """Iterate one epoch, or what is left of it."""
        done = self.batches_done_in_epoch()
        if not 0 < done < len(self.dataloader):
            return super().run_epoch()
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        for idx, data_batch in enumerate(self._rest_of_epoch(done), done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

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
