"""CARLA Leaderboard route files: parsing both formats, frames, errors, filters, writing."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.scene.routes import (
    PointIndex,
    RouteFileError,
    RouteFormat,
    RoutePoseIndex,
    RouteSpec,
    ScenarioSpec,
    Weather,
    format_routes,
    load_route,
    load_routes,
    parse_routes,
    write_routes,
)
from tests.conftest import ROOT, shared_file

LB1_TRAINING = "routes/lb1_routes_training.xml"
LB1_DEVTEST = "routes/lb1_routes_devtest.xml"
LB2_DEVTEST = "routes/lb2_routes_devtest.xml"
ALL_FILES = (LB1_TRAINING, LB1_DEVTEST, LB2_DEVTEST)


def _xml_routes(path: Path) -> dict[str, ET.Element]:
    """The <route> elements of a file by id, read with plain ElementTree (independent check)."""
    return {r.attrib["id"]: r for r in ET.parse(path).getroot().iter("route")}


def _mapping(value: object) -> dict[str, object]:
    assert isinstance(value, Mapping)
    return dict(value)


def _assert_kaido_yaw(kaido_rad: float, carla_deg: float) -> None:
    """kaido yaw = -radians(CARLA yaw), compared as an angle and wrapped to [-pi, pi)."""
    assert -math.pi <= kaido_rad < math.pi
    assert math.cos(kaido_rad) == pytest.approx(math.cos(math.radians(carla_deg)), abs=1e-12)
    assert math.sin(kaido_rad) == pytest.approx(-math.sin(math.radians(carla_deg)), abs=1e-12)


# --------------------------------------------------------------------------- real files


def test_lb1_training_routes_per_town_match_the_xml() -> None:
    path = shared_file(LB1_TRAINING)
    text = path.read_text(encoding="utf-8")
    expected = Counter(re.findall(r'<route\s+id="[^"]*"\s+town="([^"]+)"', text))
    assert sum(expected.values()) == len(re.findall(r"<route\b", text))  # the regex saw them all
    routes = load_routes(path)
    assert Counter(r.town for r in routes) == expected
    assert [r.route_id for r in routes] == re.findall(r'<route\s+id="([^"]*)"', text)
    assert all(r.format is RouteFormat.LEADERBOARD_1 and r.source == path for r in routes)


def test_lb1_town01_routes_have_their_waypoints() -> None:
    path = shared_file(LB1_TRAINING)
    xml_routes = _xml_routes(path)
    town01 = load_routes(path, town="Town01")
    assert town01
    for route in town01:
        assert route.town == "Town01"
        assert route.waypoints.shape == (len(xml_routes[route.route_id].findall("waypoint")), 3)
        assert route.waypoints.shape[0] >= 2


@pytest.mark.parametrize("relative", [LB1_TRAINING, LB1_DEVTEST])
def test_lb1_waypoints_flip_y_and_convert_yaw(relative: str) -> None:
    path = shared_file(relative)
    xml_routes = _xml_routes(path)
    for route in load_routes(path):
        elements = xml_routes[route.route_id].findall("waypoint")
        xml = np.array([[float(e.attrib[k]) for k in ("x", "y", "z")] for e in elements])
        np.testing.assert_array_equal(route.waypoints[:, PointIndex.X], xml[:, 0])
        np.testing.assert_array_equal(route.waypoints[:, PointIndex.Y], -xml[:, 1])
        np.testing.assert_array_equal(route.waypoints[:, PointIndex.Z], xml[:, 2])
        assert route.yaws is not None and route.yaws.shape == (len(elements),)
        for yaw, element in zip(route.yaws, elements, strict=True):
            _assert_kaido_yaw(float(yaw), float(element.attrib["yaw"]))


def test_lb1_weather_is_read_when_present() -> None:
    for relative in (LB1_TRAINING, LB1_DEVTEST):
        path = shared_file(relative)
        xml_routes = _xml_routes(path)
        for route in load_routes(path):
            weather_elements = xml_routes[route.route_id].findall("weather")
            assert len(route.weathers) == len(weather_elements)
            for weather, element in zip(route.weathers, weather_elements, strict=True):
                assert weather.route_percentage is None
                assert dict(weather.parameters) == {k: float(v) for k, v in element.attrib.items()}
    first = load_route(shared_file(LB1_TRAINING), "0")
    assert first.weathers[0].parameters["sun_altitude_angle"] == 70.0


def test_lb2_routes_waypoints_and_weathers() -> None:
    path = shared_file(LB2_DEVTEST)
    xml_routes = _xml_routes(path)
    routes = load_routes(path)
    assert [r.route_id for r in routes] == list(xml_routes)
    for route in routes:
        element = xml_routes[route.route_id]
        assert route.format is RouteFormat.LEADERBOARD_2
        assert route.town == element.attrib["town"]
        assert route.yaws is None
        positions = element.findall("waypoints/position")
        xml = np.array([[float(p.attrib[k]) for k in ("x", "y", "z")] for p in positions])
        np.testing.assert_array_equal(route.waypoints, xml * np.array([1.0, -1.0, 1.0]))
        weather_elements = element.findall("weathers/weather")
        assert len(route.weathers) == len(weather_elements) >= 2
        for weather, w in zip(route.weathers, weather_elements, strict=True):
            assert weather.route_percentage == float(w.attrib["route_percentage"])
            assert "route_percentage" not in weather.parameters
            assert weather.parameters["sun_altitude_angle"] == float(w.attrib["sun_altitude_angle"])
            assert len(weather.parameters) == len(w.attrib) - 1
    assert [w.route_percentage for w in routes[0].weathers] == [0.0, 100.0]


def test_lb2_scenarios_triggers_and_parameters() -> None:
    path = shared_file(LB2_DEVTEST)
    xml_routes = _xml_routes(path)
    for route in load_routes(path):
        elements = xml_routes[route.route_id].findall("scenarios/scenario")
        assert len(route.scenarios) == len(elements) > 0
        for scenario, element in zip(route.scenarios, elements, strict=True):
            assert scenario.name == element.attrib["name"]
            assert scenario.type == element.attrib["type"]
            trigger = element.find("trigger_point")
            assert trigger is not None
            assert scenario.trigger.shape == (len(RoutePoseIndex),)
            assert scenario.trigger[RoutePoseIndex.X] == float(trigger.attrib["x"])
            assert scenario.trigger[RoutePoseIndex.Y] == -float(trigger.attrib["y"])
            assert scenario.trigger[RoutePoseIndex.Z] == float(trigger.attrib["z"])
            _assert_kaido_yaw(
                float(scenario.trigger[RoutePoseIndex.YAW]), float(trigger.attrib["yaw"])
            )
            other = [child.tag for child in element if child.tag != "trigger_point"]
            assert list(scenario.parameters) == other
    route0 = load_route(path, "0")
    by_name = {s.name: s for s in route0.scenarios}
    parking = by_name["ParkingExit_1"]
    assert dict(parking.parameters) == {
        "direction": "right",
        "front_vehicle_distance": 9.0,
        "behind_vehicle_distance": 9.0,
    }
    left_turn = by_name["SignalizedJunctionLeftTurn_1"]
    assert left_turn.parameters["flow_speed"] == 16.6
    assert _mapping(left_turn.parameters["source_dist_interval"]) == {"from": 30.0, "to": 65.0}
    assert dict(by_name["Accident_1"].parameters) == {}
    # ParkingExit_1 triggers at CARLA yaw 90 (facing +y, south): kaido yaw -pi/2 (facing -y).
    assert parking.trigger[RoutePoseIndex.YAW] == pytest.approx(-math.pi / 2)


def test_lb2_frequency_with_single_value_is_a_number() -> None:
    routes = load_routes(shared_file(LB2_DEVTEST))
    frequencies = [
        s.parameters["frequency"]
        for r in routes
        for s in r.scenarios
        if "frequency" in s.parameters
    ]
    assert 80.0 in frequencies
    assert any(isinstance(f, Mapping) for f in frequencies)


def test_parsed_data_is_read_only() -> None:
    route = load_route(shared_file(LB2_DEVTEST), "0")
    with pytest.raises(ValueError, match="read-only"):
        route.waypoints[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        route.scenarios[0].trigger[0] = 1.0
    with pytest.raises(TypeError):
        route.weathers[0].parameters["cloudiness"] = 1.0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        route.town = "Town01"  # type: ignore[misc]


# --------------------------------------------------------------------------- filters


def test_filter_by_town_and_ids() -> None:
    path = shared_file(LB1_TRAINING)
    everything = load_routes(path)
    town03 = load_routes(path, town="Town03")
    assert town03 and all(r.town == "Town03" for r in town03)
    assert len(town03) == sum(r.town == "Town03" for r in everything)
    picked = [everything[3].route_id, everything[1].route_id]
    by_ids = load_routes(path, route_ids=picked)
    assert [r.route_id for r in by_ids] == [everything[1].route_id, everything[3].route_id]
    town03_ids = {r.route_id for r in town03}
    both = load_routes(path, town="Town03", route_ids=[r.route_id for r in everything[:30]])
    assert {r.route_id for r in both} == town03_ids & {r.route_id for r in everything[:30]}
    assert load_route(path, picked[0]).route_id == picked[0]


def test_filter_errors_name_what_is_missing() -> None:
    path = shared_file(LB1_TRAINING)
    with pytest.raises(RouteFileError, match=r"'no-such-id'.*not in the file") as err:
        load_routes(path, route_ids=["0", "no-such-id"])
    assert str(path) in str(err.value) and "'0'" in str(err.value)
    with pytest.raises(RouteFileError, match=r"no route in town 'Town99'.*Town01"):
        load_routes(path, town="Town99")
    with pytest.raises(TypeError, match="not the string"):
        load_routes(path, route_ids="12")
    with pytest.raises(TypeError, match="strings"):
        load_routes(path, route_ids=[12])  # type: ignore[list-item]
    with pytest.raises(RouteFileError) as err:
        load_route(path, "4242")
    message = str(err.value)
    assert "route '4242'" in message and "no such route" in message
    assert "'0', '1'" in message and "routes in all" in message


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "routes.xml"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_routes(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_route(missing, "0")


# --------------------------------------------------------------------------- malformed input

WP = '<waypoint x="{x}" y="{y}" z="0" yaw="90"/>'
GOOD_V1 = WP.format(x=1, y=2) + WP.format(x=3, y=4)
POS = '<position x="{x}" y="{y}" z="0"/>'
GOOD_V2 = "<waypoints>" + POS.format(x=1, y=2) + POS.format(x=3, y=4) + "</waypoints>"


def _doc(*routes: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<routes>\n' + "\n".join(routes) + "\n</routes>\n"
    )


MALFORMED = {
    "missing id": (
        _doc(f'<route town="Town01">{GOOD_V1}</route>'),
        None,
        ["<route> index 0", "attribute 'id' is missing"],
        3,
    ),
    "missing town": (
        _doc(f'<route id="7" town="Town01">{GOOD_V1}</route>', f'<route id="8">{GOOD_V1}</route>'),
        "8",
        ["attribute 'town' is missing"],
        4,
    ),
    "waypoint missing y": (
        _doc(
            '<route id="3" town="Town01">' + GOOD_V1 + '\n<waypoint x="1" z="0" yaw="0"/></route>'
        ),
        "3",
        ["<waypoint> index 2", "attribute 'y' is missing"],
        4,
    ),
    "waypoint non-numeric x": (
        _doc(f'<route id="3" town="Town01">{WP.format(x="abc", y=1)}{GOOD_V1}</route>'),
        "3",
        ["<waypoint> index 0", "attribute 'x' = 'abc' is not a finite number"],
        3,
    ),
    "waypoint nan z": (
        _doc('<route id="3" town="Town01">' + GOOD_V1 + '<waypoint x="1" y="1" z="nan"/></route>'),
        "3",
        ["<waypoint> index 2", "attribute 'z' = 'nan' is not a finite number"],
        3,
    ),
    "one waypoint": (
        _doc(f'<route id="5" town="Town01">{WP.format(x=1, y=1)}</route>'),
        "5",
        ["1 waypoint(s), at least 2 are required"],
        3,
    ),
    "one position": (
        _doc(f'<route id="5" town="Town12"><waypoints>{POS.format(x=1, y=1)}</waypoints></route>'),
        "5",
        ["1 waypoint(s), at least 2 are required"],
        3,
    ),
    "no waypoints": (
        _doc('<route id="6" town="Town01"></route>'),
        "6",
        ["route has no waypoints"],
        3,
    ),
    "duplicate id": (
        _doc(
            f'<route id="2" town="Town01">{GOOD_V1}</route>',
            f'<route id="2" town="Town02">{GOOD_V1}</route>',
        ),
        "2",
        ["duplicate route id", "first used on line 3"],
        4,
    ),
    "yaw on some waypoints only": (
        _doc(f'<route id="9" town="Town01">{GOOD_V1}<waypoint x="1" y="1" z="0"/></route>'),
        "9",
        ["<waypoint> index 2", "'yaw' is missing here but present on earlier waypoints"],
        3,
    ),
    "mixed formats": (
        _doc(f'<route id="4" town="Town01">{GOOD_V1}{GOOD_V2}</route>'),
        "4",
        ["both <waypoint> children", "<waypoints> element"],
        3,
    ),
    "1.0 route with scenarios": (
        _doc(f'<route id="4" town="Town01">{GOOD_V1}<scenarios/></route>'),
        "4",
        ["mixes Leaderboard 1.0", "<scenarios>"],
        3,
    ),
    "two 1.0 weathers": (
        _doc(f'<route id="4" town="Town01"><weather cloudiness="1"/><weather/>{GOOD_V1}</route>'),
        "4",
        ["<weather> appears 2 times"],
        3,
    ),
    "weather not numeric": (
        _doc(f'<route id="4" town="Town01"><weather cloudiness="cloudy"/>{GOOD_V1}</route>'),
        "4",
        ["<weather>", "attribute 'cloudiness' = 'cloudy' is not a finite number"],
        3,
    ),
    "2.0 weather without percentage": (
        _doc(
            f'<route id="11" town="Town12">{GOOD_V2}'
            '<weathers><weather route_percentage="0" cloudiness="1"/>'
            '<weather cloudiness="2"/></weathers></route>'
        ),
        "11",
        ["<weathers> <weather> index 1", "attribute 'route_percentage' is missing"],
        3,
    ),
    "2.0 weather percentage out of range": (
        _doc(
            f'<route id="11" town="Town12">{GOOD_V2}'
            '<weathers><weather route_percentage="150"/></weathers></route>'
        ),
        "11",
        ["route_percentage = 150.0 is outside [0, 100]"],
        3,
    ),
    "position missing z": (
        _doc(
            '<route id="12" town="Town12"><waypoints><position x="1" y="2" z="0"/>\n'
            '<position x="1" y="2"/></waypoints></route>'
        ),
        "12",
        ["<waypoints> <position> index 1", "attribute 'z' is missing"],
        4,
    ),
    "scenario without trigger": (
        _doc(
            f'<route id="13" town="Town12">{GOOD_V2}<scenarios>\n'
            '<scenario name="A_1" type="A"><distance value="3"/></scenario></scenarios></route>'
        ),
        "13",
        ["<scenario name='A_1'>", "needs exactly one <trigger_point>, found 0"],
        4,
    ),
    "scenario without type": (
        _doc(
            f'<route id="13" town="Town12">{GOOD_V2}<scenarios>'
            '<scenario name="A_1"><trigger_point x="1" y="1" z="1" yaw="0"/></scenario>'
            "</scenarios></route>"
        ),
        "13",
        ["<scenario> index 0", "attribute 'type' is missing"],
        3,
    ),
    "trigger without yaw": (
        _doc(
            f'<route id="13" town="Town12">{GOOD_V2}<scenarios>'
            '<scenario name="A_1" type="A"><trigger_point x="1" y="1" z="1"/></scenario>'
            "</scenarios></route>"
        ),
        "13",
        ["<scenario name='A_1'> <trigger_point>", "attribute 'yaw' is missing"],
        3,
    ),
    "scenario parameter twice": (
        _doc(
            f'<route id="13" town="Town12">{GOOD_V2}<scenarios>'
            '<scenario name="A_1" type="A"><trigger_point x="1" y="1" z="1" yaw="0"/>'
            '<distance value="1"/><distance value="2"/></scenario></scenarios></route>'
        ),
        "13",
        ["<scenario name='A_1'> <distance>", "parameter element appears twice"],
        3,
    ),
    "location parameter not numeric": (
        _doc(
            f'<route id="13" town="Town12">{GOOD_V2}<scenarios>'
            '<scenario name="A_1" type="A"><trigger_point x="1" y="1" z="1" yaw="0"/>'
            '<other_actor_location x="1" y="far" z="0"/></scenario></scenarios></route>'
        ),
        "13",
        ["<other_actor_location>", "attribute 'y' = 'far' is not a finite number"],
        3,
    ),
    "wrong root": (
        '<?xml version="1.0"?>\n<route id="1" town="Town01"/>\n',
        None,
        ["the root element is <route>, expected <routes>"],
        2,
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_invalid_routes_name_file_route_element_and_reason(tmp_path: Path, case: str) -> None:
    text, route_id, reasons, line = MALFORMED[case]
    path = tmp_path / "bad_routes.xml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RouteFileError) as err:
        load_routes(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ")
    assert err.value.line == line and err.value.source == path
    if route_id is not None:
        assert f"route {route_id!r}" in message
        assert err.value.route_id == route_id
    for reason in reasons:
        assert reason in message
    # the same text without a file names no file but gives the same reason
    with pytest.raises(RouteFileError, match=re.escape(reasons[-1])):
        parse_routes(text)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('<routes>\n  <route id="1" town="Town01">\n</routes>\n', 3, "mismatched tag"),
        ("<routes>\n<route id='1' town=Town01/>\n</routes>", 2, "not well-formed"),
        ("", 1, "no element found"),
        ('<routes>\n<route id="1" id="2"/>\n</routes>', 2, "duplicate attribute"),
    ],
)
def test_malformed_xml_gives_file_line_and_column(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = tmp_path / "broken.xml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RouteFileError, match=reason) as err:
        load_routes(path)
    assert err.value.line == line and err.value.column is not None and err.value.column >= 1
    assert str(err.value).startswith(f"{path}:{line}:{err.value.column}: malformed XML")


@pytest.mark.parametrize(
    "text",
    [
        '<?xml version="1.0"?>\n<!DOCTYPE routes [<!ENTITY a "aaaa">]>\n<routes>&a;</routes>',
        '<!DOCTYPE routes SYSTEM "file:///etc/passwd">\n<routes/>',
        "<!DOCTYPE routes>\n<routes/>",
    ],
)
def test_doctype_and_entities_are_rejected(text: str) -> None:
    with pytest.raises(RouteFileError, match="DOCTYPE declarations and entities are not allowed"):
        parse_routes(text, source=Path("evil.xml"))


def test_undeclared_entity_is_malformed() -> None:
    with pytest.raises(RouteFileError, match="undefined entity"):
        parse_routes('<routes><route id="&x;" town="Town01"/></routes>')


def test_empty_routes_file_has_no_routes() -> None:
    assert parse_routes("<routes>\n</routes>") == []


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize("relative", ALL_FILES)
def test_round_trip_through_a_file(tmp_path: Path, relative: str) -> None:
    path = shared_file(relative)
    routes = load_routes(path)
    out = tmp_path / "written.xml"
    write_routes(routes, out, routes[0].format)
    again = load_routes(out)
    assert len(again) == len(routes)
    for a, b in zip(routes, again, strict=True):
        assert a.allclose(b, atol=1e-6), a.route_id
        assert b.source == out
    # the written file is what the leaderboard expects: same structure, CARLA-frame numbers
    original, written = _xml_routes(path), _xml_routes(out)
    assert list(written) == list(original)
    for rid, element in original.items():
        assert [e.tag for e in written[rid].iter()] == [e.tag for e in element.iter()]
        for old, new in zip(element.iter(), written[rid].iter(), strict=True):
            for key, text in old.attrib.items():
                if key == "yaw":
                    _assert_kaido_yaw(-math.radians(float(new.attrib[key])), float(text))
                elif key not in ("pitch", "roll"):
                    assert new.attrib[key] == text or float(new.attrib[key]) == float(text)


def test_lb1_routes_written_as_lb2(tmp_path: Path) -> None:
    routes = load_routes(shared_file(LB1_DEVTEST))
    with pytest.raises(ValueError, match=r"route '0' cannot be written in Leaderboard 2\.0.*yaws"):
        format_routes(routes, RouteFormat.LEADERBOARD_2)
    converted = [
        dataclasses.replace(r, yaws=None, format=RouteFormat.LEADERBOARD_2) for r in routes
    ]
    out = tmp_path / "lb2.xml"
    write_routes(converted, out, RouteFormat.LEADERBOARD_2)
    assert "<position " in out.read_text(encoding="utf-8")
    again = load_routes(out)
    assert all(r.format is RouteFormat.LEADERBOARD_2 for r in again)
    for a, b in zip(converted, again, strict=True):
        assert a.allclose(b)


def test_lossy_writes_are_refused() -> None:
    lb2 = load_routes(shared_file(LB2_DEVTEST))
    with pytest.raises(ValueError, match=r"route '0' cannot be written in Leaderboard 1\.0.*scen"):
        format_routes(lb2, RouteFormat.LEADERBOARD_1)
    keyframes = [dataclasses.replace(r, scenarios=()) for r in lb2]
    with pytest.raises(ValueError, match="weather keyframes"):
        format_routes(keyframes, RouteFormat.LEADERBOARD_1)
    one = [dataclasses.replace(r, weathers=r.weathers[:1]) for r in keyframes]
    with pytest.raises(ValueError, match="route_percentage"):
        format_routes(one, RouteFormat.LEADERBOARD_1)
    lb1 = load_routes(shared_file(LB1_TRAINING), route_ids=["0"])
    no_yaws = [dataclasses.replace(lb1[0], yaws=None)]
    with pytest.raises(ValueError, match=r"2\.0 weathers need a route_percentage"):
        format_routes(no_yaws, RouteFormat.LEADERBOARD_2)
    with pytest.raises(ValueError, match="duplicate route id '0'"):
        format_routes([lb1[0], lb1[0]], RouteFormat.LEADERBOARD_1)


LOCATION_ROUTE = _doc(
    f'<route id="20" town="Town12">{GOOD_V2}<scenarios>'
    '<scenario name="HighwayCutIn_1" type="HighwayCutIn">'
    '<trigger_point x="10" y="20" z="1" yaw="180"/>'
    '<other_actor_location x="5" y="-6" z="0.5"/>'
    '<start_actor_flow x="1" y="2" z="3" yaw="-90"/>'
    '<source_dist_interval from="20" to="x"/>'
    "<marker/>"
    '<blocker_model value="static.prop.trafficwarning"/>'
    "</scenario></scenarios></route>"
)


def test_location_parameters_are_kaido_frame_points() -> None:
    (route,) = parse_routes(LOCATION_ROUTE)
    (scenario,) = route.scenarios
    np.testing.assert_array_equal(scenario.trigger[:3], [10.0, -20.0, 1.0])
    assert scenario.trigger[RoutePoseIndex.YAW] == pytest.approx(-math.pi)
    location = scenario.parameters["other_actor_location"]
    assert isinstance(location, np.ndarray)
    np.testing.assert_array_equal(location, [5.0, 6.0, 0.5])
    flow = scenario.parameters["start_actor_flow"]
    assert isinstance(flow, np.ndarray) and flow.shape == (len(RoutePoseIndex),)
    np.testing.assert_allclose(flow, [1.0, -2.0, 3.0, math.pi / 2])
    assert _mapping(scenario.parameters["source_dist_interval"]) == {"from": 20.0, "to": "x"}
    assert _mapping(scenario.parameters["marker"]) == {}
    assert scenario.parameters["blocker_model"] == "static.prop.trafficwarning"
    (again,) = parse_routes(format_routes([route], RouteFormat.LEADERBOARD_2))
    assert again.allclose(route)
    written = ET.fromstring(format_routes([route], RouteFormat.LEADERBOARD_2))
    element = written.find(".//other_actor_location")
    assert element is not None and element.attrib == {"x": "5", "y": "-6", "z": "0.5"}


# --------------------------------------------------------------------------- property test

_names = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
_coord = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
_yaw = st.floats(-math.pi, math.pi, exclude_max=True)
_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz._", min_size=1, max_size=12)


@st.composite
def _scenarios(draw: st.DrawFn, index: int) -> ScenarioSpec:
    params: dict[str, object] = {}
    for key in draw(st.lists(_names, max_size=4, unique=True)):
        if key == "trigger_point":
            continue
        kind = draw(st.sampled_from(["float", "str", "mapping", "point", "pose"]))
        if kind == "float":
            params[key] = draw(_coord)
        elif kind == "str":
            params[key] = draw(_words)
        elif kind == "mapping":
            attrs = draw(st.dictionaries(_names, _coord | _words, min_size=2, max_size=3))
            if set(attrs) in ({"x", "y", "z"}, {"x", "y", "z", "yaw"}):
                continue
            params[key] = attrs
        else:
            size = 3 if kind == "point" else 4
            values = [draw(_coord) for _ in range(3)] + ([draw(_yaw)] if size == 4 else [])
            params[key] = np.array(values)
    trigger = np.array([draw(_coord), draw(_coord), draw(_coord), draw(_yaw)])
    return ScenarioSpec(
        name=f"S_{index}",
        type=draw(_words),
        trigger=trigger,
        parameters=params,  # type: ignore[arg-type]
    )


@st.composite
def _routes(draw: st.DrawFn) -> list[RouteSpec]:
    fmt = draw(st.sampled_from(list(RouteFormat)))
    routes = []
    for i in range(draw(st.integers(1, 3))):
        n = draw(st.integers(2, 6))
        waypoints = np.array([[draw(_coord) for _ in range(3)] for _ in range(n)])
        weather_params = st.dictionaries(_names.filter(lambda k: k != "route_percentage"), _coord)
        if fmt is RouteFormat.LEADERBOARD_1:
            yaws = np.array([draw(_yaw) for _ in range(n)]) if draw(st.booleans()) else None
            weathers = [Weather(None, draw(weather_params)) for _ in range(draw(st.integers(0, 1)))]
            scenarios: list[ScenarioSpec] = []
        else:
            yaws = None
            weathers = [
                Weather(draw(st.floats(0, 100)), draw(weather_params))
                for _ in range(draw(st.integers(0, 3)))
            ]
            scenarios = [draw(_scenarios(j)) for j in range(draw(st.integers(0, 3)))]
        routes.append(
            RouteSpec(
                route_id=str(i),
                town=draw(st.sampled_from(["Town01", "Town12"])),
                waypoints=waypoints,
                yaws=yaws,
                weathers=tuple(weathers),
                scenarios=tuple(scenarios),
                format=fmt,
                source=None,
            )
        )
    return routes


@settings(max_examples=150, deadline=None)
@given(_routes())
def test_format_then_parse_round_trips(routes: list[RouteSpec]) -> None:
    fmt = routes[0].format
    again = parse_routes(format_routes(routes, fmt))
    assert len(again) == len(routes)
    for a, b in zip(routes, again, strict=True):
        assert a.allclose(b, atol=1e-6)
        assert not a.allclose(dataclasses.replace(b, town=b.town + "x"))


# --------------------------------------------------------------------------- data classes


def test_route_spec_validates_its_fields() -> None:
    two = np.zeros((2, 3))
    with pytest.raises(ValueError, match="at least 2 waypoints"):
        RouteSpec("1", "Town01", np.zeros((1, 3)), None, (), (), RouteFormat.LEADERBOARD_1)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        RouteSpec("1", "Town01", np.zeros((2, 2)), None, (), (), RouteFormat.LEADERBOARD_1)
    with pytest.raises(ValueError, match="finite"):
        RouteSpec("1", "Town01", two + np.nan, None, (), (), RouteFormat.LEADERBOARD_1)
    with pytest.raises(ValueError, match=r"yaws must have shape \(2,\)"):
        RouteSpec("1", "Town01", two, np.zeros(3), (), (), RouteFormat.LEADERBOARD_1)
    with pytest.raises(ValueError, match=r"2\.0 routes carry no waypoint yaws"):
        RouteSpec("1", "Town01", two, np.zeros(2), (), (), RouteFormat.LEADERBOARD_2)
    with pytest.raises(ValueError, match="route_id must be a non-empty string"):
        RouteSpec("", "Town01", two, None, (), (), RouteFormat.LEADERBOARD_1)
    scenario = ScenarioSpec("A_1", "A", np.zeros(4), {})
    with pytest.raises(ValueError, match=r"1\.0 routes carry no scenarios"):
        RouteSpec("1", "Town01", two, None, (), (scenario,), RouteFormat.LEADERBOARD_1)
    with pytest.raises(ValueError, match=r"Weather.route_percentage must be in \[0, 100\]"):
        Weather(101.0, {})
    with pytest.raises(TypeError, match="'fog' must be a number"):
        Weather(None, {"fog": "dense"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"is ScenarioSpec\.trigger"):
        ScenarioSpec("A_1", "A", np.zeros(4), {"trigger_point": 1.0})
    with pytest.raises(ValueError, match=r"shape \(3,\) \[x, y, z\] or \(4,\)"):
        ScenarioSpec("A_1", "A", np.zeros(4), {"loc": np.zeros(2)})
    with pytest.raises(ValueError, match="XML name"):
        ScenarioSpec("A_1", "A", np.zeros(4), {"bad name": 1.0})
    route = RouteSpec(
        "1", "Town01", two, np.array([math.pi, 4.0]), (), (), RouteFormat.LEADERBOARD_1
    )
    assert route.yaws is not None
    np.testing.assert_allclose(route.yaws, [-math.pi, 4.0 - 2 * math.pi])


def test_module_imports_without_carla() -> None:
    code = "import sys; sys.modules['carla'] = None; import kaido.scene.routes"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
