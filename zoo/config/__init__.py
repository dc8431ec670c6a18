"""The run config: its schemas, where conf/ is, composing from it, comparing two runs' configs."""
from zoo.config.schema import (MODEL_META_KEYS, DataConfig, TrainerConfig, batch_size_divisor, model_node,
                               stored_run_config, validate_section)

__all__ = ["MODEL_META_KEYS", "DataConfig", "TrainerConfig", "batch_size_divisor", "model_node", "stored_run_config",
           "validate_section"]
