"""Data-parallel training across processes started by ``torchrun`` or ``accelerate launch``.

Every process runs the same script on the same data and builds the same batches from
the same seed; each computes the loss and gradients of its share of every batch, and
one all-reduce per step sums the gradients (with the loss and the Ctrl-C flag), so every
process takes the same optimizer step and the weights stay identical. The loss of a
share is its sum divided by the whole batch's size, so the summed gradient is exactly the
gradient of one process training on the whole batch (except through BatchNorm layers,
which normalise each share by its own statistics; rank 0's running statistics are copied
to every process at the end of each call). This module imports nothing from
skbert.
"""

import os

import numpy as np
import torch


def launched_world_size():
    """Number of processes the launcher started (1 without a launcher)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_device(device):
    """This process's device: CUDA devices are assigned one per local rank."""
    if device.type == "cuda" and device.index is None and launched_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


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

    def shard(self, rows):
        """This process's share of a batch: contiguous, sizes differing by at most one."""
        return np.array_split(rows, self.world_size)[self.rank]

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

    def broadcast_module(self, module):
        """Copy rank 0's parameters and buffers to every process."""
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                self._dist.broadcast(tensor.data, src=0)

    def all_reduce(self, parameters, loss, interrupted):
        """Sum gradients, losses and Ctrl-C flags over processes, in one collective.

        A parameter that received no gradient in any process keeps ``grad = None`` (as
        in one process, where AdamW then skips it); one that did in some process gets
        the sum, with zeros standing for the processes where it did not.

        Parameters
        ----------
        parameters : list of torch.nn.Parameter
            The trained parameters, in the same order in every process.
        loss : float
            This process's share of the batch loss.
        interrupted : bool
            Whether Ctrl-C was pressed in this process.

        Returns
        -------
        loss : float
            The batch loss (sum over processes).
        interrupted : bool
            Whether any process was interrupted.
        """
        grads = [p.grad for p in parameters]
        pieces = [
            (g if g is not None else torch.zeros_like(p)).reshape(-1).float()
            for p, g in zip(parameters, grads, strict=True)
        ]
        flags = [0.0 if g is None else 1.0 for g in grads] + [loss, float(interrupted)]
        pieces.append(torch.tensor(flags, dtype=torch.float32, device=self.device))
        flat = torch.cat(pieces)
        self._dist.all_reduce(flat)
        n_params = len(parameters)
        tail = flat[-(n_params + 2):].tolist()
        start = 0
        for p, count in zip(parameters, tail[:n_params], strict=True):
            size = p.numel()
            p.grad = None if count == 0 else flat[start : start + size].view_as(p).to(p.dtype)
            start += size
        return tail[-2], tail[-1] > 0

    def _comm_device(self):
        return self.device if self._dist.get_backend() == "nccl" else torch.device("cpu")


def data_parallel(device):
    """A ``DataParallel`` when launched on several processes, else None."""
    if launched_world_size() <= 1:
        return None
    return DataParallel(device)
