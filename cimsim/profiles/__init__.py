"""Device profiles: the pydantic schema and the YAML loader."""

from .functions import XFunction
from .schema import DeviceProfile

__all__ = ["DeviceProfile", "XFunction"]
