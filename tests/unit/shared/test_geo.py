"""Coordinate systems and distances: round trips, agreement with an independent implementation
(prcoords), identity outside China, and great-circle distances of known length."""

from __future__ import annotations

import math
import warnings

import numpy as np
import prcoords
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.geo import (
    CRS_NAMES,
    EARTH_RADIUS_M,
    bd09_to_gcj02,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    haversine_m,
    to_wgs84,
    valid_latlon,
    wgs84_to_gcj02,
)

pytestmark = pytest.mark.unit

HEYUAN = (23.74, 114.70)
ONE_DEGREE_M = EARTH_RADIUS_M * math.pi / 180.0  # ~111 195 m


def china_grid(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Points across mainland China's bounding box (Hainan to Heilongjiang, Xinjiang to the coast)."""
    lat, lon = np.meshgrid(np.linspace(18.2, 53.5, n), np.linspace(73.6, 134.7, n))
    return lat.ravel(), lon.ravel()


# Outside the GCJ-02 box: Paris, New York, Sydney, Moscow, Reykjavik, Cape Town, north of the box
# (Siberia) and south of it (0.5N, in the South China Sea latitude-wise but below the box).
ABROAD = [(48.8566, 2.3522), (40.7128, -74.0060), (-33.8688, 151.2093), (55.7558, 37.6173),
          (64.1466, -21.9426), (-33.9249, 18.4241), (60.0, 100.0), (0.5, 110.0)]

lat_cn = st.floats(min_value=18.0, max_value=53.5, allow_nan=False)
lon_cn = st.floats(min_value=73.7, max_value=134.7, allow_nan=False)


# ------------------------------------------------------------------ round trips

def test_gcj02_round_trip_over_china_within_a_centimetre() -> None:
    lat, lon = china_grid()
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lat, lon))
    assert haversine_m(lat, lon, *back).max() < 0.01


def test_bd09_round_trip_over_china_within_a_centimetre() -> None:
    lat, lon = china_grid()
    back = to_wgs84(*from_wgs84(lat, lon, "bd09"), "bd09")
    assert haversine_m(lat, lon, *back).max() < 0.01


def test_gcj02_bd09_round_trip_within_a_centimetre() -> None:
    lat, lon = china_grid()
    back = bd09_to_gcj02(*gcj02_to_bd09(lat, lon))
    assert haversine_m(lat, lon, *back).max() < 0.01


@settings(max_examples=100, deadline=None)
@given(lat_cn, lon_cn, st.sampled_from(CRS_NAMES))
def test_round_trip_property(lat: float, lon: float, crs: str) -> None:
    back = to_wgs84(*from_wgs84(lat, lon, crs), crs)  # type: ignore[arg-type]
    assert float(haversine_m(lat, lon, *back)) < 0.01


def test_inverse_is_exact_not_the_one_step_approximation() -> None:
    # the one-step inverse (gcj - (f(gcj) - gcj)) is off by up to metres; ours must not be
    lat, lon = china_grid()
    g_lat, g_lon = wgs84_to_gcj02(lat, lon)
    rough = np.array([prcoords.gcj_wgs((a, o)) for a, o in zip(g_lat, g_lon, strict=True)])
    exact = gcj02_to_wgs84(g_lat, g_lon)
    rough_err = haversine_m(lat, lon, rough[:, 0], rough[:, 1])
    exact_err = haversine_m(lat, lon, *exact)
    assert rough_err.max() > 0.1  # the approximation really is coarse: this test can tell them apart
    assert exact_err.max() < 0.001


# ------------------------------------------------------------------ against prcoords

def test_wgs84_to_gcj02_agrees_with_prcoords() -> None:
    lat, lon = china_grid()
    ours = wgs84_to_gcj02(lat, lon)
    ref = np.array([prcoords.wgs_gcj((a, o)) for a, o in zip(lat, lon, strict=True)])
    assert haversine_m(*ours, ref[:, 0], ref[:, 1]).max() < 0.5


def test_wgs84_to_bd09_agrees_with_prcoords() -> None:
    lat, lon = china_grid()
    ours = from_wgs84(lat, lon, "bd09")
    ref = np.array([prcoords.wgs_bd((a, o)) for a, o in zip(lat, lon, strict=True)])
    assert haversine_m(*ours, ref[:, 0], ref[:, 1]).max() < 0.5


def test_gcj02_to_bd09_agrees_with_prcoords() -> None:
    lat, lon = china_grid()
    ours = gcj02_to_bd09(lat, lon)
    ref = np.array([prcoords.gcj_bd((a, o)) for a, o in zip(lat, lon, strict=True)])
    assert haversine_m(*ours, ref[:, 0], ref[:, 1]).max() < 0.5


def test_inverses_agree_with_prcoords_iterative_inverses() -> None:
    lat, lon = china_grid(12)
    for crs, ref_inverse in (("gcj02", prcoords.gcj_wgs_bored), ("bd09", prcoords.bd_wgs_bored)):
        f_lat, f_lon = from_wgs84(lat, lon, crs)  # type: ignore[arg-type]
        ours = to_wgs84(f_lat, f_lon, crs)  # type: ignore[arg-type]
        ref = np.array([ref_inverse((a, o)) for a, o in zip(f_lat, f_lon, strict=True)])
        assert haversine_m(*ours, ref[:, 0], ref[:, 1]).max() < 0.5, crs


@settings(max_examples=100, deadline=None)
@given(lat_cn, lon_cn)
def test_forward_transforms_agree_with_prcoords_property(lat: float, lon: float) -> None:
    g = wgs84_to_gcj02(lat, lon)
    b = from_wgs84(lat, lon, "bd09")
    ref_g, ref_b = prcoords.wgs_gcj((lat, lon)), prcoords.wgs_bd((lat, lon))
    assert float(haversine_m(*g, ref_g.lat, ref_g.lon)) < 0.5
    assert float(haversine_m(*b, ref_b.lat, ref_b.lon)) < 0.5


# ------------------------------------------------------------------ size of the offset, outside China

def test_gcj02_offset_in_heyuan_is_hundreds_of_metres() -> None:
    g = wgs84_to_gcj02(*HEYUAN)
    d = float(haversine_m(*HEYUAN, *g))
    assert 300.0 < d < 900.0
    # BD-09 adds Baidu's own offset on top (about a kilometre more)
    b = from_wgs84(*HEYUAN, "bd09")
    assert float(haversine_m(*HEYUAN, *b)) > d + 500.0


def test_gcj02_offset_is_under_a_kilometre_everywhere_in_china() -> None:
    lat, lon = china_grid()
    d = haversine_m(lat, lon, *wgs84_to_gcj02(lat, lon))
    assert d.min() > 10.0
    assert d.max() < 1000.0


@pytest.mark.parametrize(("lat", "lon"), ABROAD)
def test_gcj02_is_identity_outside_china(lat: float, lon: float) -> None:
    g_lat, g_lon = wgs84_to_gcj02(lat, lon)
    assert (float(g_lat), float(g_lon)) == (lat, lon)
    w_lat, w_lon = gcj02_to_wgs84(lat, lon)
    assert (float(w_lat), float(w_lon)) == (lat, lon)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # prcoords warns about non-Chinese coordinates
        ref = prcoords.wgs_gcj((lat, lon))
    assert (ref.lat, ref.lon) == (lat, lon)


def test_mixed_array_converts_only_the_points_in_china() -> None:
    lat = np.array([HEYUAN[0], ABROAD[0][0]])
    lon = np.array([HEYUAN[1], ABROAD[0][1]])
    g_lat, g_lon = wgs84_to_gcj02(lat, lon)
    assert (g_lat[0], g_lon[0]) != (lat[0], lon[0])
    assert (g_lat[1], g_lon[1]) == (lat[1], lon[1])


def test_wgs84_is_the_identity_and_scalars_work() -> None:
    assert tuple(map(float, to_wgs84(*HEYUAN, "wgs84"))) == HEYUAN
    assert tuple(map(float, from_wgs84(*HEYUAN, "wgs84"))) == HEYUAN
    g = wgs84_to_gcj02(*HEYUAN)
    assert g[0].shape == () and g[1].shape == ()


def test_vectorised_equals_scalar() -> None:
    lat, lon = china_grid(5)
    v_lat, v_lon = wgs84_to_gcj02(lat, lon)
    for i in range(lat.size):
        s_lat, s_lon = wgs84_to_gcj02(float(lat[i]), float(lon[i]))
        assert (float(s_lat), float(s_lon)) == (v_lat[i], v_lon[i])


def test_conversion_does_not_modify_its_input() -> None:
    lat, lon = china_grid(5)
    lat0, lon0 = lat.copy(), lon.copy()
    for crs in CRS_NAMES:
        to_wgs84(lat, lon, crs)
        from_wgs84(lat, lon, crs)
    np.testing.assert_array_equal(lat, lat0)
    np.testing.assert_array_equal(lon, lon0)


@pytest.mark.parametrize("crs", ["utm", "WGS84 ", "", "epsg:4326"])
def test_unknown_crs_is_refused(crs: str) -> None:
    with pytest.raises(ValueError, match="unknown coordinate system"):
        to_wgs84(*HEYUAN, crs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown coordinate system"):
        from_wgs84(*HEYUAN, crs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ distances

def test_one_degree_of_latitude() -> None:
    assert float(haversine_m(0.0, 0.0, 1.0, 0.0)) == pytest.approx(111_195.0, abs=1.0)
    assert float(haversine_m(23.0, 114.7, 24.0, 114.7)) == pytest.approx(ONE_DEGREE_M, rel=1e-12)


def test_one_degree_of_longitude_shrinks_with_latitude() -> None:
    assert float(haversine_m(0.0, 10.0, 0.0, 11.0)) == pytest.approx(ONE_DEGREE_M, rel=1e-12)
    at_60 = float(haversine_m(60.0, 10.0, 60.0, 11.0))
    assert at_60 == pytest.approx(ONE_DEGREE_M / 2, rel=1e-4)  # cos 60 = 1/2 (a great circle is a bit shorter)
    assert at_60 < ONE_DEGREE_M / 2


def test_known_long_distances() -> None:
    assert float(haversine_m(0, 0, 0, 90)) == pytest.approx(EARTH_RADIUS_M * math.pi / 2, rel=1e-12)
    assert float(haversine_m(90, 0, -90, 0)) == pytest.approx(EARTH_RADIUS_M * math.pi, rel=1e-12)
    assert float(haversine_m(0, 0, 0, 180)) == pytest.approx(EARTH_RADIUS_M * math.pi, rel=1e-12)
    # across the antimeridian: 1 degree, not 359
    assert float(haversine_m(0, 179.5, 0, -179.5)) == pytest.approx(ONE_DEGREE_M, rel=1e-9)
    # Beijing (39.9042, 116.4074) to Shanghai (31.2304, 121.4737): about 1068 km
    assert float(haversine_m(39.9042, 116.4074, 31.2304, 121.4737)) == pytest.approx(1_067_500, rel=0.005)


def test_short_distances_agree_with_prcoords() -> None:
    a = prcoords.Coords(*HEYUAN)
    b = prcoords.Coords(HEYUAN[0] + 0.001, HEYUAN[1] + 0.002)
    # prcoords uses R = 6371000 m: same formula up to the radius
    expected = a.distance(b) * EARTH_RADIUS_M / prcoords.EARTH_R
    assert float(haversine_m(*a, *b)) == pytest.approx(expected, rel=1e-9)


def test_haversine_broadcasts() -> None:
    lat, lon = china_grid(4)
    d = haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    assert d.shape == (lat.size, lat.size)
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-6)
    np.testing.assert_allclose(d, d.T, rtol=1e-12, atol=1e-6)


points = st.tuples(st.floats(-90, 90), st.floats(-180, 180))


@settings(max_examples=100, deadline=None)
@given(points, points, points)
def test_haversine_is_a_metric(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> None:
    d_pq = float(haversine_m(*p, *q))
    assert d_pq == pytest.approx(float(haversine_m(*q, *p)), rel=1e-9, abs=1e-6)
    assert float(haversine_m(*p, *p)) == 0.0
    assert 0.0 <= d_pq <= EARTH_RADIUS_M * math.pi + 1e-6
    assert d_pq <= float(haversine_m(*p, *r)) + float(haversine_m(*r, *q)) + 1e-3


# ------------------------------------------------------------------ validity

@pytest.mark.parametrize(("lat", "lon", "ok"), [
    (23.74, 114.70, True),
    (90.0, 180.0, True),
    (-90.0, -180.0, True),
    (0.0, 0.0, True),  # a valid coordinate; the feeds reject (0, 0) themselves
    (90.0001, 0.0, False),
    (999.0, 114.7, False),
    (23.7, -200.0, False),
    (float("nan"), 114.7, False),
    (23.7, float("inf"), False),
])
def test_valid_latlon(lat: float, lon: float, ok: bool) -> None:
    assert bool(valid_latlon(lat, lon)) is ok


def test_valid_latlon_is_vectorised() -> None:
    got = valid_latlon([23.7, 999.0, np.nan], [114.7, 114.7, 114.7])
    np.testing.assert_array_equal(got, [True, False, False])


def test_bulk_inverse_on_a_lattice_matches_the_iteration() -> None:
    from shared.geo import _iterate_inverse

    rng = np.random.default_rng(7)
    glat = 23.6 + rng.random(120_000) * 0.3
    glon = 114.5 + rng.random(120_000) * 0.4
    fast = gcj02_to_wgs84(glat, glon)
    exact = _iterate_inverse(glat, glon)
    assert float(np.max(haversine_m(*fast, *exact))) < 0.001
    # a batch spread across the country is too large for one lattice and is iterated instead
    wide = gcj02_to_wgs84(np.linspace(20, 45, 60_000), np.linspace(100, 125, 60_000))
    back = wgs84_to_gcj02(*wide)
    assert float(np.max(haversine_m(*back, np.linspace(20, 45, 60_000), np.linspace(100, 125, 60_000)))) < 0.01
