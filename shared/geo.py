"""Coordinates: WGS-84, GCJ-02 and BD-09, and distances between them.

Everything is vectorised over numpy arrays (scalars work too). The internal system is
WGS-84: convert at the edge with :func:`to_wgs84`, then measure with :func:`haversine_m`.

GCJ-02 is the obfuscated datum mandated for published maps in mainland China (offsets of
hundreds of metres from WGS-84); BD-09 is Baidu's further offset of GCJ-02. The forward
transform is the well-known public algorithm; the inverse is solved by fixed-point
iteration to well under a millimetre, not the one-step approximation many libraries use
(which is off by up to a couple of metres).
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

Crs: TypeAlias = Literal["wgs84", "gcj02", "bd09"]
CRS_NAMES: tuple[Crs, ...] = ("wgs84", "gcj02", "bd09")
Arr: TypeAlias = npt.NDArray[np.float64]

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 algorithm.
_A = 6378245.0
_EE = 0.00669342162296594323
_BD_X_PI = np.pi * 3000.0 / 180.0


def _as_arr(x: npt.ArrayLike) -> Arr:
    return np.asarray(x, dtype=np.float64)


def _out_of_china(lat: Arr, lon: Arr) -> npt.NDArray[np.bool_]:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _gcj_delta(lat: Arr, lon: Arr) -> tuple[Arr, Arr]:
    x = lon - 105.0
    y = lat - 35.0
    sx = np.sqrt(np.abs(x))
    s6 = 20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx
    dlat = dlat + s6 * 2.0 / 3.0
    dlat = dlat + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx
    dlon = dlon + s6 * 2.0 / 3.0
    dlon = dlon + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = _out_of_china(lat, lon)
    return np.where(outside, 0.0, dlat), np.where(outside, 0.0, dlon)


def wgs84_to_gcj02(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[Arr, Arr]:
    la, lo = _as_arr(lat), _as_arr(lon)
    dlat, dlon = _gcj_delta(la, lo)
    return la + dlat, lo + dlon


def gcj02_to_wgs84(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[Arr, Arr]:
    """Inverse of :func:`wgs84_to_gcj02` to well under a millimetre.

    Fixed-point iteration; three rounds leave at most 0.2 mm anywhere in China (checked by a test).
    A large batch of points in one city takes the offset on a 0.001° lattice around them instead,
    interpolated bilinearly: under 1 mm off the iteration, at a tenth of the cost."""
    glat, glon = _as_arr(lat), _as_arr(lon)
    if glat.size >= _LATTICE_MIN_POINTS:
        fast = _lattice_inverse(glat, glon)
        if fast is not None:
            return fast
    return _iterate_inverse(glat, glon)


_LATTICE_MIN_POINTS = 50_000
_LATTICE_STEP = 0.001
_LATTICE_MAX_NODES = 1_000_000


def _iterate_inverse(glat: Arr, glon: Arr) -> tuple[Arr, Arr]:
    wlat, wlon = glat.copy(), glon.copy()
    for _ in range(3):
        tlat, tlon = wgs84_to_gcj02(wlat, wlon)
        wlat = wlat + (glat - tlat)
        wlon = wlon + (glon - tlon)
    return wlat, wlon


def _lattice_inverse(glat: Arr, glon: Arr) -> tuple[Arr, Arr] | None:
    step = _LATTICE_STEP
    a0, o0 = float(np.min(glat)) - step, float(np.min(glon)) - step
    na = int((float(np.max(glat)) - a0) / step) + 3
    no = int((float(np.max(glon)) - o0) / step) + 3
    if not (np.isfinite(a0) and np.isfinite(o0)) or na * no > _LATTICE_MAX_NODES:
        return None  # points spread over a region too large for one lattice
    la, lo = np.meshgrid(a0 + step * np.arange(na), o0 + step * np.arange(no), indexing="ij")
    wla, wlo = _iterate_inverse(la, lo)
    d_lat, d_lon = wla - la, wlo - lo
    fi, fj = (glat - a0) / step, (glon - o0) / step
    i, j = fi.astype(np.int64), fj.astype(np.int64)
    u, v = fi - i, fj - j
    # the four corners by flat index, and 1 - u, 1 - v, worked out once for both offsets (the
    # same operations in the same order as d[i, j] * (1 - u) * (1 - v) + ...: the same floats)
    c00 = i * no + j
    c10, c01 = c00 + no, c00 + 1
    c11 = c10 + 1
    u1, v1 = 1 - u, 1 - v

    def at(d: Arr) -> Arr:
        f = d.ravel()
        out: Arr = f[c00] * u1 * v1 + f[c10] * u * v1 + f[c01] * u1 * v + f[c11] * u * v
        return out

    return glat + at(d_lat), glon + at(d_lon)


def gcj02_to_bd09(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[Arr, Arr]:
    la, lo = _as_arr(lat), _as_arr(lon)
    z = np.sqrt(lo * lo + la * la) + 0.00002 * np.sin(la * _BD_X_PI)
    theta = np.arctan2(la, lo) + 0.000003 * np.cos(lo * _BD_X_PI)
    return z * np.sin(theta) + 0.006, z * np.cos(theta) + 0.0065


def bd09_to_gcj02(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[Arr, Arr]:
    la, lo = _as_arr(lat), _as_arr(lon)
    x = lo - 0.0065
    y = la - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD_X_PI)
    glat, glon = z * np.sin(theta), z * np.cos(theta)
    # refine: make the forward transform of the answer hit the input exactly
    for _ in range(3):
        tlat, tlon = gcj02_to_bd09(glat, glon)
        glat = glat + (la - tlat)
        glon = glon + (lo - tlon)
    return glat, glon


def to_wgs84(lat: npt.ArrayLike, lon: npt.ArrayLike, crs: Crs) -> tuple[Arr, Arr]:
    if crs == "wgs84":
        return _as_arr(lat), _as_arr(lon)
    if crs == "gcj02":
        return gcj02_to_wgs84(lat, lon)
    if crs == "bd09":
        return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))
    raise ValueError(f"unknown coordinate system {crs!r}; expected one of {CRS_NAMES}")


def from_wgs84(lat: npt.ArrayLike, lon: npt.ArrayLike, crs: Crs) -> tuple[Arr, Arr]:
    if crs == "wgs84":
        return _as_arr(lat), _as_arr(lon)
    if crs == "gcj02":
        return wgs84_to_gcj02(lat, lon)
    if crs == "bd09":
        return gcj02_to_bd09(*wgs84_to_gcj02(lat, lon))
    raise ValueError(f"unknown coordinate system {crs!r}; expected one of {CRS_NAMES}")


def haversine_m(lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike) -> Arr:
    """Great-circle distance in metres (broadcasting)."""
    p1, p2 = np.radians(_as_arr(lat1)), np.radians(_as_arr(lat2))
    dp = p2 - p1
    dl = np.radians(_as_arr(lon2) - _as_arr(lon1))
    h = np.sin(dp / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2.0) ** 2
    d: Arr = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return d


def valid_latlon(lat: npt.ArrayLike, lon: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    la, lo = _as_arr(lat), _as_arr(lon)
    return np.isfinite(la) & np.isfinite(lo) & (np.abs(la) <= 90.0) & (np.abs(lo) <= 180.0)


def local_xy_m(lat: npt.ArrayLike, lon: npt.ArrayLike, lat0: float, lon0: float) -> tuple[Arr, Arr]:
    """Equirectangular projection around (lat0, lon0), in metres: exact enough within a city."""
    k = np.pi / 180.0 * EARTH_RADIUS_M
    return (_as_arr(lon) - lon0) * k * np.cos(np.radians(lat0)), (_as_arr(lat) - lat0) * k
