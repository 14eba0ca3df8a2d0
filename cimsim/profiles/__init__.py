"""Device profiles: the pydantic schema, functions of x, the YAML loader and the generated docs.

``load_profile("pcm")`` reads ``device_models/pcm.yaml``; see ``docs/profiles.md`` for every field.
"""

from .functions import XFunction
from .loader import (
    MODELS_DIR,
    dump_profile,
    list_profiles,
    load_profile,
    parse_override,
    profile_from_dict,
    profile_from_yaml,
    profile_path,
    profile_sha256,
)
from .schema import DeviceProfile

__all__ = [
    "MODELS_DIR",
    "DeviceProfile",
    "XFunction",
    "dump_profile",
    "list_profiles",
    "load_profile",
    "parse_override",
    "profile_from_dict",
    "profile_from_yaml",
    "profile_path",
    "profile_sha256",
]
