"""Example strategies, found by the engine through the `tradingd.strategies` entry points:
`gamma_scalp` (GammaScalp), `momentum` (Momentum) and `cross_venue` (CrossVenue: Polymarket's
crypto price markets against the options venue's volatility surface). Copy one to start your own."""

from .cross_venue import CrossVenue as CrossVenue
from .gamma_scalp import GammaScalp as GammaScalp
from .momentum import Momentum as Momentum
