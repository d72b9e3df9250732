"""Networks and blocks built from fastalex ops."""
from fastalex.models.inception import Inception

__all__ = ["Inception"]
