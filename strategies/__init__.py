"""Example strategies, found by the engine through the `tradingd.strategies` entry points:
`gamma_scalp` (GammaScalp) and `momentum` (Momentum). Copy one to start your own."""

from .gamma_scalp import GammaScalp as GammaScalp
from .momentum import Momentum as Momentum
