"""The values the trajectory rules work on. Immutable; instants are UTC epoch seconds (platform clock
unless a name says otherwise); positions are WGS-84 degrees."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

F64: TypeAlias = npt.NDArray[np.float64]
LatLon: TypeAlias = tuple[float, float]


class Phase(StrEnum):
    TO_PICKUP = "to_pickup"
    AT_MERCHANT = "at_merchant"
    DELIVERING = "delivering"
    CONNECTING = "connecting"
    IDLE = "idle"
    OFFLINE = "offline"
    INSUFFICIENT_DATA = "insufficient_data"

    @property
    def continuous_delivery(self) -> bool | None:
        """True for the four phases of rule 5, None (undetermined, never "no") for an abstention."""
        if self is Phase.INSUFFICIENT_DATA:
            return None
        return self in CONTINUOUS


CONTINUOUS = frozenset({Phase.TO_PICKUP, Phase.AT_MERCHANT, Phase.DELIVERING, Phase.CONNECTING})


@dataclass(frozen=True)
class Params:
    """The named thresholds of DATA_CONTRACT §5, and the engine's own tuning."""

    merchant_radius_m: float = 50.0  # "reached the merchant": within this distance
    dwell_radius_m: float = 50.0  # "stayed within": this radius
    dwell_min_s: float = 600.0  # a dwell this long breaks a connection
    max_connecting_gap_s: float = 1800.0  # tB - tA at most this for a connection
    # rule 6: the incident's aftermath
    aftermath_start_s: float = 300.0  # a stay beginning at most this long after the incident ...
    aftermath_radius_m: float = 100.0  # ... within this distance of its place is its aftermath
    # engine: a stay that began up to this long before the reported time still counts (reported
    # times run a little late; the public fall-aftermath case sat down 2.3 min before its report)
    aftermath_lead_s: float = 180.0
    aftermath_min_s: float = 600.0  # engine: a stay as long as a dwell (a shorter stop decides nothing)
    # location check (§6): the reported time may be off
    time_check_min_s: float = 180.0  # nearest approach further than this from the reported time ...
    time_check_radius_m: float = 50.0  # ... and within this distance of the reported place
    # engine: which pass by the place explains a report best (domain/passes.py): a reported place
    # is good to about this many metres (Gaussian) ...
    time_check_place_sigma_m: float = 15.0
    # ... and a report is off in time by about this much (exponential: minutes, seldom hours)
    time_check_offset_scale_s: float = 600.0
    # engine: an outage may hide a pass when the place lies on his way between the two fixes:
    # riding by it at most this much longer than riding straight (streets are not straight) ...
    time_check_detour_m: float = 400.0
    # ... but no fix saw him there: such a pass counts as if he had passed this far from the place
    time_check_unseen_m: float = 30.0
    # ... and another pass that explains the report less than this many times worse is named too
    time_check_rival_ratio: float = 3.0
    # cleaning
    max_accuracy_m: float = 60.0  # fixes worse than this are not used for positions
    max_speed_mps: float = 35.0  # faster than this between fixes is a teleport
    duplicate_window_s: float = 1.0  # fixes closer in time than this and ...
    duplicate_radius_m: float = 2.0  # ... closer in space than this are one fix
    observation_gap_s: float = 150.0  # no fix for longer than this: unknown, never a stay ...
    bridge_max_s: float = 480.0  # ... unless at most this long (an indoor outage) and ...
    bridge_radius_m: float = 25.0  # ... its two ends lie within this distance: then spent there
    # drift: the fix wanders off and comes back (within bridge_radius_m) -- not a ride
    drift_max_s: float = 480.0  # back within this long
    drift_max_m: float = 150.0  # never further than this from where it left
    drift_max_speed_mps: float = 2.0  # never faster than this over 30 s (riders ride at 3-8 m/s)
    # clock reconciliation
    max_clock_skew_s: float = 1200.0
    stationary_speed_mps: float = 1.0
    # a rider can cross an observation gap no faster than this when we bound a hidden dwell
    plausible_speed_mps: float = 8.0


@dataclass(frozen=True)
class Track:
    """One rider's GPS fixes, sorted by time. ``t`` is on the clock stated by the owner."""

    t: F64
    lat: F64
    lon: F64
    accuracy: F64  # NaN where unknown

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @staticmethod
    def empty() -> Track:
        z = np.zeros(0, dtype=np.float64)
        return Track(z, z, z, z)

    def shifted(self, dt: float) -> Track:
        return Track(self.t + dt, self.lat, self.lon, self.accuracy)

    def between(self, t0: float, t1: float) -> Track:
        i, j = np.searchsorted(self.t, [t0, t1], side="left")
        return Track(self.t[i:j], self.lat[i:j], self.lon[i:j], self.accuracy[i:j])


@dataclass(frozen=True)
class Order:
    """One order's lifecycle as the platform recorded it (platform clock)."""

    order_id: str
    platform: str
    accepted: float
    arrived: float | None = None  # the platform's arrived_merchant event
    picked_up: float | None = None
    ended: float | None = None  # delivered or cancelled
    end_kind: str | None = None  # "delivered" | "cancelled"
    merchant: LatLon | None = None
    customer: LatLon | None = None

    @property
    def end_or_inf(self) -> float:
        return self.ended if self.ended is not None else float("inf")


@dataclass(frozen=True)
class PresenceEvent:
    t: float
    platform: str
    online: bool


@dataclass(frozen=True)
class RiderDay:
    """Everything known about one rider: orders, presence, raw GPS (phone clock)."""

    rider_id: str
    orders: tuple[Order, ...]
    presence: tuple[PresenceEvent, ...]
    gps: Track  # phone clock, WGS-84, as received (uncleaned, any order)


@dataclass(frozen=True)
class Incident:
    incident_id: str
    rider_id: str
    at: float
    at_text: str
    location: LatLon | None = None


@dataclass(frozen=True)
class Segment:
    """A stretch of time with one phase. ``orders`` are the active orders (or, between orders,
    the previous and next one)."""

    start: float
    end: float
    phase: Phase
    orders: tuple[str, ...] = ()
    why: str = ""
    detail: dict[str, float | str | None] = field(default_factory=dict)
