"""A validation pass: gradients off, every layer in eval mode, and each mode restored after.

The three training loops (pretraining, completion head, descriptor head) validate inside
``with evaluating(model, head):``. Restoring the mode of every sub-module (rather than calling
``train()`` on the whole) keeps a part the loop holds in eval mode, such as a frozen encoder,
in eval mode after validation too.
"""

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def evaluating(*modules: torch.nn.Module) -> Iterator[None]:
    """Run the block under ``torch.no_grad`` with ``modules`` in eval mode.

    Args:
        *modules: The modules to evaluate.

    Yields:
        Nothing; on leaving the block (also by an exception) every sub-module has the training
        flag it had on entering.
    """
    flags = [(part, part.training) for module in modules for part in module.modules()]
    for module in modules:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for part, training in flags:
            part.train(training)
