"""Inference-only rewrites of a loaded model that keep its float32 results (logits within 1e-4).

* BatchNorm folding: every head ``ConvBlock`` whose convolution is followed by BatchNorm gets
  one convolution with the folded weights and a bias (``torch.nn.utils.fusion``). Eval-mode
  BatchNorm is an affine map per channel, so this is the same function; it saves one pass
  over every feature map (the head's 3×3 convolutions at full resolution dominate its time).
* Channels-last: weights and activations in NHWC, the layout oneDNN's (and cuDNN's)
  convolutions run natively, which removes a reorder before and after each convolution.

The rewritten model has no ``*.bn.*`` keys in its state dict and cannot be trained: apply it
to a model that only predicts (the :class:`~utils.inference.predictor.Predictor` does), never before
saving a checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from lib.modules.conv import ConvBlock

__all__ = ["fold_batchnorm", "optimize_for_inference"]


def fold_batchnorm(model: nn.Module) -> int:
    """Fold each ConvBlock's eval-mode BatchNorm into its convolution, in place.

    Returns the number of folded blocks. The model must be in eval mode (running statistics).
    """
    if any(module.training for module in model.modules() if isinstance(module, ConvBlock)):
        raise ValueError("fold_batchnorm needs an eval-mode model (call model.eval() first)")
    folded = 0
    for module in model.modules():
        if isinstance(module, ConvBlock) and module.bn is not None:
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = None
            folded += 1
    return folded


def optimize_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """Eval mode, BatchNorm folding and (optionally) channels-last weights, in place.

    Feed channels-last inputs (``x.contiguous(memory_format=torch.channels_last)``) to get the
    full benefit; NCHW inputs still give the same numbers.
    """
    model.eval()
    fold_batchnorm(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model
