"""The filter chain's steps, by the names `--filter` takes."""

from flock.manager.scheduler.filters.affinity import AffinityFilter
from flock.manager.scheduler.filters.base import Filter, FilterResult, Removal
from flock.manager.scheduler.filters.constraint import ConstraintFilter
from flock.manager.scheduler.filters.dependency import DependencyFilter
from flock.manager.scheduler.filters.health import HealthFilter
from flock.manager.scheduler.filters.port import PortFilter
from flock.manager.scheduler.filters.slots import SlotsFilter

FILTERS: dict[str, type[Filter]] = {
    cls.name: cls
    for cls in (
        HealthFilter,
        PortFilter,
        SlotsFilter,
        DependencyFilter,
        AffinityFilter,
        ConstraintFilter,
    )
}
DEFAULT_FILTERS = list(FILTERS)

__all__ = ["DEFAULT_FILTERS", "FILTERS", "Filter", "FilterResult", "Removal"]
