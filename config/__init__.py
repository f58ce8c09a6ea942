"""tradingd's configuration: the TOML schema and its loader. Example configs live beside it
(`config/backtest.toml`, ...)."""

from ._loader import LoadedConfig as LoadedConfig
from ._loader import load_catalog_settings as load_catalog_settings
from ._loader import load_config as load_config
from ._loader import load_config_data as load_config_data
from ._loader import load_daemon_settings as load_daemon_settings
from ._schema import AlertsConfig as AlertsConfig
from ._schema import BacktestConfig as BacktestConfig
from ._schema import CatalogConfig as CatalogConfig
from ._schema import Config as Config
from ._schema import DaemonConfig as DaemonConfig
from ._schema import DataFileConfig as DataFileConfig
from ._schema import LimitsConfig as LimitsConfig
from ._schema import LoggingConfig as LoggingConfig
from ._schema import MetricsConfig as MetricsConfig
from ._schema import RecordingConfig as RecordingConfig
from ._schema import StrategyConfig as StrategyConfig
from ._schema import SurfaceConfig as SurfaceConfig
from ._schema import WebhookConfig as WebhookConfig
from ._schema import utc_ns as utc_ns
from ._sweep import load_sweep as load_sweep
