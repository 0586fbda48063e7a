"""Building blocks of the InSPyReNet head."""

from lib.modules.conv import ConvBlock
from lib.modules.paa import PAA_d, PAA_e, PAA_kernel
from lib.modules.self_attention import SelfAttention
from lib.modules.sica import SICA
from lib.modules.transition import Transition

__all__ = ["SICA", "ConvBlock", "PAA_d", "PAA_e", "PAA_kernel", "SelfAttention", "Transition"]
