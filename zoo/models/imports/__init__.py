"""Detectors published by other libraries, read into zoo's models: each source's key map and conventions in its own
module, registered in ``IMPORTS`` (see catalog.ImportSpec); ``zoo-import`` (zoo.apis.import_model) writes the
checkpoint."""
from zoo.models.imports import detectron2, mmdet, ports, torchvision  # noqa: F401  (each registers its models)
from zoo.models.imports.catalog import IMPORTS, ImportSpec, find_import
from zoo.models.imports.keys import ImportError_, KeyMap, check_fit

__all__ = ["IMPORTS", "ImportError_", "ImportSpec", "KeyMap", "check_fit", "find_import"]
