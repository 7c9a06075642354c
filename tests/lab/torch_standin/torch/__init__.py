"""The isaac-deploy test lab's stand-in of PyTorch: only ``torch.distributed.run`` (torchrun),
see ``torch/distributed/run.py``. Importing it says what it is."""

STANDIN = "isaac-deploy lab stand-in of torch (torch.distributed.run only)"
