"""Data-parallel training on torch's engine, for processes started by ``torchrun`` or
``accelerate launch``.

Every process runs the same script on the same data and builds the same batches from
the same seed; each runs its share of every batch through the network wrapped in
``torch.nn.parallel.DistributedDataParallel`` (gloo on the CPU, NCCL on CUDA), which
averages the gradients over processes during the backward pass. A share's loss is its
sum divided by the whole batch's size, times the number of processes, so the averaged
gradient is the gradient of the whole batch in one process (except through BatchNorm
layers, which normalise each share by its own statistics; rank 0's running statistics
are copied to every process after each pass). One small all-reduce per step makes
every process agree on the loss (the NaN check) and on Ctrl-C. This module uses
``_device`` (the launcher's world size) and nothing else from skbert.
"""

import numpy as np
import torch

from ._device import launched_world_size


class DataParallel:
    """The processes of a data-parallel run, seen from one of them.

    Parameters
    ----------
    device : torch.device
        This process's training device; picks the backend (NCCL on CUDA, else gloo)
        when the process group is not initialised yet.
    """

    def __init__(self, device):
        import torch.distributed as dist

        if device.type == "cuda":  # this rank's GPU becomes the current one, not GPU 0
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self._dist = dist
        self.device = device
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    @property
    def is_main(self):
        """Whether this is the process that writes checkpoints and shows progress."""
        return self.rank == 0

    def wrap(self, network):
        """``network`` in ``DistributedDataParallel``, which copies rank 0's weights to
        every process now and averages gradients in every backward pass.

        Parameters the loss does not reach (a backbone's unused pooler, parts of a
        custom head) are allowed.
        """
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(network, device_ids=device_ids,
                                       find_unused_parameters=True)

    def shard(self, n):
        """This process's share of a batch of ``n`` rows, and its loss scale.

        Shares are contiguous and differ in size by at most one. A process whose share
        is empty (a batch smaller than the world) runs the first row with scale 0, since
        every process must take part in each backward pass.

        Returns
        -------
        part : slice
            Positions in the batch.
        scale : float
            Multiplies the share's loss (the world size; 0 for an empty share).
        """
        small, extra = divmod(n, self.world_size)  # as np.array_split cuts
        size = small + (self.rank < extra)
        start = self.rank * small + min(self.rank, extra)
        if size == 0:
            return slice(0, 1), 0.0
        return slice(start, start + size), float(self.world_size)

    def agree(self, loss, interrupted):
        """The batch loss (the sum of the shares) and whether any process saw Ctrl-C."""
        flags = torch.tensor([loss, float(interrupted)], dtype=torch.float64,
                             device=self._comm_device())
        self._dist.all_reduce(flags)
        return flags[0].item() / self.world_size, flags[1].item() > 0

    def broadcast_seed(self, seed):
        """Rank 0's seed, so that every process shuffles and splits alike."""
        return int(self._broadcast(seed, torch.int64))

    def broadcast_score(self, score):
        """Rank 0's validation score, so that every process stops early alike."""
        return float(self._broadcast(score, torch.float64))

    def _broadcast(self, value, dtype):
        tensor = torch.tensor([value], dtype=dtype, device=self._comm_device())
        self._dist.broadcast(tensor, src=0)
        return tensor.item()

    def check_same_input(self, digest):
        """Raise in every process unless all were given the same data (its 16-byte digest).

        Every process must call ``fit``/``partial_fit`` with the same texts and labels:
        the batches are split between them here, not by the caller.
        """
        mine = torch.from_numpy(np.frombuffer(digest, dtype=np.int64).copy())
        mine = mine.to(self._comm_device())
        first = mine.clone()
        self._dist.broadcast(first, src=0)
        differs = torch.tensor([float(not torch.equal(mine, first))], device=mine.device)
        self._dist.all_reduce(differs)
        if differs.item() > 0:
            raise ValueError(
                f"The {self.world_size} processes of this data-parallel run were given "
                f"different training data ({int(differs.item())} differ from rank 0's). "
                "Call fit/partial_fit with the same X and y in every process: skbert "
                "gives each process its share of every batch. To train in one process, "
                "run the script without torchrun/accelerate (WORLD_SIZE unset or 1)."
            )

    def broadcast_buffers(self, module):
        """Copy rank 0's buffers (BatchNorm running statistics, which each process
        gathers on its own share) to every process."""
        with torch.no_grad():
            for tensor in module.buffers():
                self._dist.broadcast(tensor.data, src=0)

    def _comm_device(self):
        return self.device if self._dist.get_backend() == "nccl" else torch.device("cpu")


def data_parallel(device):
    """A ``DataParallel`` when launched on several processes, else None."""
    if launched_world_size() <= 1:
        return None
    return DataParallel(device)
