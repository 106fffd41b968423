"""CARLA Leaderboard route files (formats 1.0 and 2.0): parsing, validation and writing.

Formats
-------
Both formats share the outer structure ``<routes><route id="..." town="...">...</route></routes>``.
The format is detected per route:

* Leaderboard 1.0: ``<waypoint x y z pitch roll yaw/>`` children directly in ``<route>``, and at
  most one optional ``<weather .../>`` child (its attributes are the weather parameters).
  ``pitch`` and ``roll`` are ignored (the leaderboard ignores them too); ``yaw`` is optional but
  must then be absent on every waypoint of the route.
* Leaderboard 2.0: ``<waypoints><position x y z/>...</waypoints>``, optional
  ``<weathers><weather route_percentage="..." .../>...</weathers>`` (weather keyframes along the
  route) and optional ``<scenarios><scenario name type>...</scenario></scenarios>``. Each scenario
  has exactly one ``<trigger_point x y z yaw/>``; every other child element is a scenario
  parameter (see :class:`ScenarioSpec`).

Elements the leaderboard does not read are ignored, except that a route mixing the elements of
the two formats is an error.

Frames and units
----------------
Route files are in CARLA's left-handed world frame (y right/south, yaw in degrees, clockwise seen
from above). Everything this module returns is in kaido's right-handed world frame (x east, y
north, z up; metres; yaw in radians, counter-clockwise from +x, wrapped to ``[-pi, pi)``):
kaido ``(x, y, z) = (x, -y, z)`` of CARLA and kaido ``yaw = -radians(yaw)`` of CARLA.
:func:`write_routes` converts back. Weather parameters are copied as given (CARLA's units and
conventions, e.g. ``sun_azimuth_angle`` in degrees), because they configure the simulator rather
than describe geometry.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final, TypeAlias
from xml.parsers import expat

import numpy as np
import numpy.typing as npt

from kaido.scene.carla_frame import (
    carla_points_to_kaido,
    carla_yaw_to_kaido,
    kaido_points_to_carla,
    kaido_yaw_to_carla,
)
from kaido.scene.geometry import wrap_angle

__all__ = [
    "ParameterValue",
    "PointIndex",
    "RouteFileError",
    "RouteFormat",
    "RoutePoseIndex",
    "RouteSpec",
    "ScenarioSpec",
    "Weather",
    "format_routes",
    "load_route",
    "load_routes",
    "parse_routes",
    "write_routes",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
ParameterValue: TypeAlias = str | float | Mapping[str, str | float] | FloatArray
"""A scenario parameter: a scalar, an attribute mapping, or a location in kaido's frame."""

_XML_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_LOCATION_KEYS: Final = (frozenset({"x", "y", "z"}), frozenset({"x", "y", "z", "yaw"}))
_TRIGGER_TAG: Final = "trigger_point"
_MAX_IDS_LISTED: Final = 10


class RouteFormat(Enum):
    """The CARLA Leaderboard route file format a route was read from or is written in."""

    LEADERBOARD_1 = "1.0"
    LEADERBOARD_2 = "2.0"


class PointIndex(IntEnum):
    """Columns of a point array ``(..., len(PointIndex))``: x, y, z [m], kaido frame."""

    X = 0
    Y = 1
    Z = 2


class RoutePoseIndex(IntEnum):
    """Columns of a route-file pose ``(len(RoutePoseIndex),)`` = ``(4,)``, kaido frame.

    x, y, z [m] and yaw [rad]; unlike :class:`kaido.scene.geometry.PoseIndex` (SE(2)), it keeps
    the height, as the route files do.
    """

    X = 0
    Y = 1
    Z = 2
    YAW = 3


class RouteFileError(ValueError):
    """A route file (or route text) that cannot be read.

    The message reads ``FILE[:LINE[:COLUMN]]: route 'ID', <ELEMENT>: REASON``, leaving out the
    parts that are not known; the parts are also kept as attributes.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: Path | str | None = None,
        route_id: str | None = None,
        element: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.route_id = route_id
        self.element = element
        self.line = line
        self.column = column
        where = str(source) if source is not None else "<routes text>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        context = []
        if route_id is not None:
            context.append(f"route {route_id!r}")
        if element is not None:
            context.append(element)
        prefix = f"{where}: {', '.join(context)}" if context else where
        super().__init__(f"{prefix}: {reason}")


# --------------------------------------------------------------------------- frame conversion
# Route files are in CARLA's left-handed frame; kaido.scene.carla_frame converts both ways.


def _carla_yaw_to_kaido(yaw_deg: float) -> float:
    return float(carla_yaw_to_kaido(yaw_deg))


def _kaido_yaw_to_carla(yaw_rad: float) -> float:
    return float(kaido_yaw_to_carla(yaw_rad))


# --------------------------------------------------------------------------- data classes


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or _XML_NAME.match(name) is None:
        raise ValueError(
            f"{what} must be an XML name (letters, digits, '_', '-', '.'), got {name!r}"
        )
    return name


def _check_finite_float(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {number!r}")
    return number


def _frozen_array(value: npt.ArrayLike, shape: tuple[int | None, ...], what: str) -> FloatArray:
    """A read-only float64 copy of ``value``, checked for shape (``None`` = any) and finiteness."""
    array = np.array(value, dtype=np.float64, copy=True)
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape, strict=True)
    ):
        dims = ["N" if s is None else str(s) for s in shape]
        wanted = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
        raise ValueError(f"{what} must have shape {wanted}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} must be finite")
    array.flags.writeable = False
    return array


def _angles_close(a: FloatArray, b: FloatArray, atol: float) -> bool:
    return bool(np.all(np.abs(wrap_angle(a - b)) <= atol))


def _poses_close(a: FloatArray, b: FloatArray, atol: float) -> bool:
    """Equal-shape ``(3,)`` points or ``(4,)`` poses, the yaw compared as an angle."""
    if a.shape != b.shape:
        return False
    n = min(a.shape[0], RoutePoseIndex.YAW)
    if not np.allclose(a[:n], b[:n], rtol=0.0, atol=atol):
        return False
    return a.shape[0] <= RoutePoseIndex.YAW or _angles_close(
        a[RoutePoseIndex.YAW :], b[RoutePoseIndex.YAW :], atol
    )


@dataclass(frozen=True)
class Weather:
    """One weather setting of a route.

    Attributes:
        route_percentage: where along the route [%, 0..100] this keyframe applies (Leaderboard
            2.0 interpolates between keyframes); ``None`` for a Leaderboard 1.0 route weather,
            which holds for the whole route.
        parameters: CARLA ``WeatherParameters`` fields as given in the file (``cloudiness``,
            ``precipitation``, ``sun_altitude_angle`` [deg], ``fog_density``, ...), CARLA's own
            units and conventions; read-only.
    """

    route_percentage: float | None
    parameters: Mapping[str, float]

    def __post_init__(self) -> None:
        if self.route_percentage is not None:
            pct = _check_finite_float(self.route_percentage, "Weather.route_percentage")
            if not 0.0 <= pct <= 100.0:
                raise ValueError(f"Weather.route_percentage must be in [0, 100], got {pct!r}")
            object.__setattr__(self, "route_percentage", pct)
        params: dict[str, float] = {}
        for key, value in self.parameters.items():
            _check_name(key, "Weather parameter name")
            if key == "route_percentage":
                raise ValueError("'route_percentage' is a field of Weather, not a parameter")
            params[key] = _check_finite_float(value, f"Weather parameter {key!r}")
        object.__setattr__(self, "parameters", MappingProxyType(params))

    def allclose(self, other: Weather, *, atol: float = 1e-6) -> bool:
        """Whether ``other`` has the same parameter names and values within ``atol``."""
        if (self.route_percentage is None) != (other.route_percentage is None):
            return False
        if self.route_percentage is not None and other.route_percentage is not None:
            if abs(self.route_percentage - other.route_percentage) > atol:
                return False
        if self.parameters.keys() != other.parameters.keys():
            return False
        return all(abs(v - other.parameters[k]) <= atol for k, v in self.parameters.items())


def _freeze_parameter(key: str, value: object) -> ParameterValue:
    what = f"ScenarioSpec parameter {key!r}"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        items: dict[str, str | float] = {}
        for attr, item in value.items():
            _check_name(attr, f"attribute name of {what}")
            items[attr] = item if isinstance(item, str) else _check_finite_float(item, what)
        return MappingProxyType(items)
    if isinstance(value, np.ndarray):
        if value.shape not in ((len(PointIndex),), (len(RoutePoseIndex),)):
            raise ValueError(
                f"{what}: a location must have shape (3,) [x, y, z] or (4,) [x, y, z, yaw], "
                f"got {value.shape}"
            )
        return _frozen_array(value, (value.shape[0],), what)
    return _check_finite_float(value, what)


def _parameters_close(a: ParameterValue, b: ParameterValue, atol: float) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and _poses_close(a, b, atol)
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)) or a.keys() != b.keys():
            return False
        return all(_parameters_close(a[k], b[k], atol) for k in a)
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return abs(a - b) <= atol


@dataclass(frozen=True, eq=False)
class ScenarioSpec:
    """One Leaderboard 2.0 scenario of a route.

    Attributes:
        name: the scenario's instance name, e.g. ``"ParkingExit_1"``.
        type: the scenario class name, e.g. ``"ParkingExit"``.
        trigger: ``(len(RoutePoseIndex),)`` = ``(4,)`` trigger pose ``[x, y, z, yaw]``, kaido frame
            ([m], [m], [m], [rad]); read-only.
        parameters: the scenario's other child elements by tag, read-only, each:

            * ``<tag value="..."/>`` (only a ``value`` attribute): a ``float`` when the value
              parses as a finite number, else the ``str``
              (``<distance value="60"/>`` -> ``60.0``, ``<direction value="right"/>`` ->
              ``"right"``);
            * ``<tag x y z/>`` or ``<tag x y z yaw/>`` (a location, e.g.
              ``<other_actor_location .../>``): a read-only float64 array ``(3,)`` ``[x, y, z]``
              or ``(4,)`` ``[x, y, z, yaw]`` converted to kaido's frame like the trigger;
            * any other attribute set (e.g. ``<source_dist_interval from="15" to="30"/>``): a
              read-only mapping attribute -> ``float`` when it parses as a finite number, else
              ``str``; an element without attributes gives an empty mapping.

            When written, a numeric-looking ``str`` comes back as a ``float`` and a mapping with
            only location or ``value`` keys comes back in the form above.
    """

    name: str
    type: str
    trigger: FloatArray
    parameters: Mapping[str, ParameterValue]

    def __post_init__(self) -> None:
        for attr in ("name", "type"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"ScenarioSpec.{attr} must be a non-empty string, got {value!r}")
        trigger = _frozen_array(self.trigger, (len(RoutePoseIndex),), "ScenarioSpec.trigger")
        object.__setattr__(self, "trigger", trigger)
        params: dict[str, ParameterValue] = {}
        for key, value in self.parameters.items():
            _check_name(key, "ScenarioSpec parameter name")
            if key == _TRIGGER_TAG:
                raise ValueError(f"{_TRIGGER_TAG!r} is ScenarioSpec.trigger, not a parameter")
            params[key] = _freeze_parameter(key, value)
        object.__setattr__(self, "parameters", MappingProxyType(params))

    def allclose(self, other: ScenarioSpec, *, atol: float = 1e-6) -> bool:
        """Whether ``other`` has the same name, type and parameters, numbers within ``atol``."""
        return (
            self.name == other.name
            and self.type == other.type
            and _poses_close(self.trigger, other.trigger, atol)
            and self.parameters.keys() == other.parameters.keys()
            and all(
                _parameters_close(v, other.parameters[k], atol) for k, v in self.parameters.items()
            )
        )


@dataclass(frozen=True, eq=False)
class RouteSpec:
    """One route of a CARLA Leaderboard route file, in kaido's frame.

    Attributes:
        route_id: the route's ``id`` attribute (a string, usually a decimal number).
        town: the CARLA map name, e.g. ``"Town01"``.
        waypoints: ``(N, len(PointIndex))`` = ``(N, 3)`` route waypoints ``[x, y, z]`` [m],
            kaido frame, ``N >= 2``; read-only. They are sparse: the leaderboard interpolates
            the route between them along the road network.
        yaws: ``(N,)`` waypoint headings [rad] in ``[-pi, pi)``, kaido frame, read-only, for a
            Leaderboard 1.0 route whose waypoints carry ``yaw``; ``None`` otherwise (always for
            2.0, whose ``<position>`` has no heading).
        weathers: the route's weather settings: none, one (1.0) or keyframes (2.0).
        scenarios: the route's scenarios (Leaderboard 2.0 only; empty for 1.0).
        format: the file format the route was read from.
        source: the file the route was read from, ``None`` for text or generated routes.
    """

    route_id: str
    town: str
    waypoints: FloatArray
    yaws: FloatArray | None
    weathers: tuple[Weather, ...]
    scenarios: tuple[ScenarioSpec, ...]
    format: RouteFormat
    source: Path | None = None

    def __post_init__(self) -> None:
        for attr in ("route_id", "town"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"RouteSpec.{attr} must be a non-empty string, got {value!r}")
        what = f"RouteSpec {self.route_id!r}"
        waypoints = _frozen_array(self.waypoints, (None, len(PointIndex)), f"{what} waypoints")
        if waypoints.shape[0] < 2:
            raise ValueError(f"{what} needs at least 2 waypoints, got {waypoints.shape[0]}")
        object.__setattr__(self, "waypoints", waypoints)
        if not isinstance(self.format, RouteFormat):
            raise TypeError(f"{what} format must be a RouteFormat, got {self.format!r}")
        if self.yaws is not None:
            if self.format is RouteFormat.LEADERBOARD_2:
                raise ValueError(f"{what}: Leaderboard 2.0 routes carry no waypoint yaws")
            yaws = _frozen_array(self.yaws, (waypoints.shape[0],), f"{what} yaws")
            yaws = wrap_angle(yaws)
            yaws.flags.writeable = False
            object.__setattr__(self, "yaws", yaws)
        object.__setattr__(self, "weathers", tuple(self.weathers))
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        for weather in self.weathers:
            if not isinstance(weather, Weather):
                raise TypeError(f"{what} weathers must be Weather, got {type(weather).__name__}")
        for scenario in self.scenarios:
            if not isinstance(scenario, ScenarioSpec):
                raise TypeError(
                    f"{what} scenarios must be ScenarioSpec, got {type(scenario).__name__}"
                )
        if self.scenarios and self.format is RouteFormat.LEADERBOARD_1:
            raise ValueError(f"{what}: Leaderboard 1.0 routes carry no scenarios")
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))

    def allclose(self, other: RouteSpec, *, atol: float = 1e-6) -> bool:
        """Whether ``other`` describes the same route, numbers within ``atol`` [m, rad, ...].

        Compares everything except ``source`` (where the route was read from).
        """
        if (
            self.route_id != other.route_id
            or self.town != other.town
            or self.format is not other.format
            or self.waypoints.shape != other.waypoints.shape
            or (self.yaws is None) != (other.yaws is None)
            or len(self.weathers) != len(other.weathers)
            or len(self.scenarios) != len(other.scenarios)
        ):
            return False
        if not np.allclose(self.waypoints, other.waypoints, rtol=0.0, atol=atol):
            return False
        if self.yaws is not None and other.yaws is not None:
            if not _angles_close(self.yaws, other.yaws, atol):
                return False
        return all(
            a.allclose(b, atol=atol) for a, b in zip(self.weathers, other.weathers, strict=True)
        ) and all(
            a.allclose(b, atol=atol) for a, b in zip(self.scenarios, other.scenarios, strict=True)
        )


# --------------------------------------------------------------------------- parsing


class _Document:
    """A parsed route file: the element tree plus the line each element starts on."""

    def __init__(self, data: str | bytes, source: Path | None) -> None:
        self.source = source
        self._lines: dict[int, int] = {}
        builder = ET.TreeBuilder()
        parser = expat.ParserCreate()

        def start(tag: str, attrs: dict[str, str]) -> None:
            element = builder.start(tag, attrs)
            self._lines[id(element)] = parser.CurrentLineNumber

        def reject_dtd(*_: object) -> None:
            raise self.error(
                "DOCTYPE declarations and entities are not allowed in route files",
                element="<!DOCTYPE>",
                line=parser.CurrentLineNumber,
            )

        parser.StartElementHandler = start
        parser.EndElementHandler = builder.end
        parser.StartDoctypeDeclHandler = reject_dtd
        parser.EntityDeclHandler = reject_dtd
        try:
            parser.Parse(data, True)
        except expat.ExpatError as err:
            raise RouteFileError(
                f"malformed XML: {expat.ErrorString(err.code)}",
                source=source,
                line=err.lineno,
                column=err.offset + 1,
            ) from None
        self.root: ET.Element = builder.close()

    def line(self, element: ET.Element) -> int | None:
        return self._lines.get(id(element))

    def error(
        self,
        reason: str,
        *,
        route_id: str | None = None,
        element: str | None = None,
        at: ET.Element | None = None,
        line: int | None = None,
    ) -> RouteFileError:
        if at is not None:
            line = self.line(at)
        return RouteFileError(
            reason, source=self.source, route_id=route_id, element=element, line=line
        )

    def optional_number(
        self, elem: ET.Element, attr: str, *, route_id: str, element: str
    ) -> float | None:
        """The attribute ``attr`` of ``elem`` as a finite float, ``None`` when it is absent."""
        text = elem.get(attr)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise self.error(
                f"attribute {attr!r} = {text!r} is not a finite number",
                route_id=route_id,
                element=element,
                at=elem,
            )
        return value

    def number(self, elem: ET.Element, attr: str, *, route_id: str, element: str) -> float:
        """The attribute ``attr`` of ``elem`` as a finite float; it must be present."""
        value = self.optional_number(elem, attr, route_id=route_id, element=element)
        if value is None:
            raise self.error(
                f"attribute {attr!r} is missing", route_id=route_id, element=element, at=elem
            )
        return value

    def point(self, elem: ET.Element, *, route_id: str, element: str) -> list[float]:
        """CARLA ``[x, y, z]`` [m] of ``elem`` (all three attributes required)."""
        return [self.number(elem, a, route_id=route_id, element=element) for a in ("x", "y", "z")]


def _scalar(text: str) -> str | float:
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _parse_weather(
    doc: _Document, elem: ET.Element, *, route_id: str, element: str, need_percentage: bool
) -> Weather:
    if need_percentage:
        pct: float | None = doc.number(elem, "route_percentage", route_id=route_id, element=element)
    else:
        pct = doc.optional_number(elem, "route_percentage", route_id=route_id, element=element)
    if pct is not None and not 0.0 <= pct <= 100.0:
        raise doc.error(
            f"route_percentage = {pct!r} is outside [0, 100]",
            route_id=route_id,
            element=element,
            at=elem,
        )
    params = {
        attr: doc.number(elem, attr, route_id=route_id, element=element)
        for attr in elem.attrib
        if attr != "route_percentage"
    }
    return Weather(route_percentage=pct, parameters=params)


def _parse_parameter(
    doc: _Document, elem: ET.Element, *, route_id: str, element: str
) -> ParameterValue:
    keys = frozenset(elem.attrib)
    if keys == {"value"}:
        return _scalar(elem.attrib["value"])
    if keys in _LOCATION_KEYS:
        point = carla_points_to_kaido(
            np.array(doc.point(elem, route_id=route_id, element=element), dtype=np.float64)
        )
        if "yaw" not in keys:
            return point
        yaw = doc.number(elem, "yaw", route_id=route_id, element=element)
        return np.append(point, _carla_yaw_to_kaido(yaw))
    return {attr: _scalar(text) for attr, text in elem.attrib.items()}


def _parse_scenario(doc: _Document, elem: ET.Element, index: int, route_id: str) -> ScenarioSpec:
    label = f"<scenario> index {index}"
    name = elem.get("name", "").strip()
    kind = elem.get("type", "").strip()
    for attr, value in (("name", name), ("type", kind)):
        if not value:
            raise doc.error(
                f"attribute {attr!r} is missing or empty", route_id=route_id, element=label, at=elem
            )
    label = f"<scenario name={name!r}>"
    triggers = [child for child in elem if child.tag == _TRIGGER_TAG]
    if len(triggers) != 1:
        raise doc.error(
            f"needs exactly one <{_TRIGGER_TAG}>, found {len(triggers)}",
            route_id=route_id,
            element=label,
            at=elem,
        )
    trigger_label = f"{label} <{_TRIGGER_TAG}>"
    xyz = carla_points_to_kaido(
        np.array(doc.point(triggers[0], route_id=route_id, element=trigger_label))
    )
    yaw = doc.number(triggers[0], "yaw", route_id=route_id, element=trigger_label)
    trigger = np.append(xyz, _carla_yaw_to_kaido(yaw))
    params: dict[str, ParameterValue] = {}
    for child in elem:
        if child.tag == _TRIGGER_TAG:
            continue
        child_label = f"{label} <{child.tag}>"
        if child.tag in params:
            raise doc.error(
                "parameter element appears twice", route_id=route_id, element=child_label, at=child
            )
        params[child.tag] = _parse_parameter(doc, child, route_id=route_id, element=child_label)
    return ScenarioSpec(name=name, type=kind, trigger=trigger, parameters=params)


def _single(doc: _Document, route: ET.Element, tag: str, route_id: str) -> ET.Element | None:
    found = route.findall(tag)
    if len(found) > 1:
        raise doc.error(
            f"<{tag}> appears {len(found)} times, at most once allowed",
            route_id=route_id,
            element=f"<{tag}>",
            at=found[1],
        )
    return found[0] if found else None


def _check_waypoint_count(doc: _Document, route: ET.Element, count: int, route_id: str) -> None:
    if count < 2:
        raise doc.error(
            f"route has {count} waypoint(s), at least 2 are required",
            route_id=route_id,
            element="<route>",
            at=route,
        )


def _parse_route_v1(doc: _Document, route: ET.Element, route_id: str, town: str) -> RouteSpec:
    for tag in ("weathers", "scenarios"):
        if route.find(tag) is not None:
            raise doc.error(
                f"route mixes Leaderboard 1.0 <waypoint> elements with the 2.0 element <{tag}>",
                route_id=route_id,
                element=f"<{tag}>",
                at=route.find(tag),
            )
    elements = route.findall("waypoint")
    _check_waypoint_count(doc, route, len(elements), route_id)
    points: list[list[float]] = []
    yaws: list[float] = []
    for i, wp in enumerate(elements):
        label = f"<waypoint> index {i}"
        points.append(doc.point(wp, route_id=route_id, element=label))
        yaw = doc.optional_number(wp, "yaw", route_id=route_id, element=label)
        if yaw is not None:
            if len(yaws) != i:
                raise doc.error(
                    "attribute 'yaw' is present here but missing on earlier waypoints; give it "
                    "on every waypoint or on none",
                    route_id=route_id,
                    element=label,
                    at=wp,
                )
            yaws.append(yaw)
        elif yaws:
            raise doc.error(
                "attribute 'yaw' is missing here but present on earlier waypoints; give it on "
                "every waypoint or on none",
                route_id=route_id,
                element=label,
                at=wp,
            )
    weather_elem = _single(doc, route, "weather", route_id)
    weathers: tuple[Weather, ...] = ()
    if weather_elem is not None:
        weathers = (
            _parse_weather(
                doc, weather_elem, route_id=route_id, element="<weather>", need_percentage=False
            ),
        )
    return RouteSpec(
        route_id=route_id,
        town=town,
        waypoints=carla_points_to_kaido(np.array(points, dtype=np.float64)),
        yaws=carla_yaw_to_kaido(yaws) if yaws else None,
        weathers=weathers,
        scenarios=(),
        format=RouteFormat.LEADERBOARD_1,
        source=doc.source,
    )


def _parse_route_v2(
    doc: _Document, route: ET.Element, container: ET.Element, route_id: str, town: str
) -> RouteSpec:
    if route.find("weather") is not None:
        raise doc.error(
            "route mixes the Leaderboard 2.0 <waypoints> element with a 1.0 <weather> element "
            "(2.0 puts <weather> elements inside <weathers>)",
            route_id=route_id,
            element="<weather>",
            at=route.find("weather"),
        )
    positions = container.findall("position")
    _check_waypoint_count(doc, route, len(positions), route_id)
    points = [
        doc.point(p, route_id=route_id, element=f"<waypoints> <position> index {i}")
        for i, p in enumerate(positions)
    ]
    weathers: list[Weather] = []
    weathers_elem = _single(doc, route, "weathers", route_id)
    if weathers_elem is not None:
        for i, w in enumerate(weathers_elem.findall("weather")):
            weathers.append(
                _parse_weather(
                    doc,
                    w,
                    route_id=route_id,
                    element=f"<weathers> <weather> index {i}",
                    need_percentage=True,
                )
            )
    scenarios: list[ScenarioSpec] = []
    scenarios_elem = _single(doc, route, "scenarios", route_id)
    if scenarios_elem is not None:
        for i, s in enumerate(scenarios_elem.findall("scenario")):
            scenarios.append(_parse_scenario(doc, s, i, route_id))
    return RouteSpec(
        route_id=route_id,
        town=town,
        waypoints=carla_points_to_kaido(np.array(points, dtype=np.float64)),
        yaws=None,
        weathers=tuple(weathers),
        scenarios=tuple(scenarios),
        format=RouteFormat.LEADERBOARD_2,
        source=doc.source,
    )


def _parse_route(doc: _Document, route: ET.Element, index: int) -> RouteSpec:
    route_id = route.get("id", "").strip()
    if not route_id:
        raise doc.error(
            "attribute 'id' is missing or empty", element=f"<route> index {index}", at=route
        )
    town = route.get("town", "").strip()
    if not town:
        raise doc.error(
            "attribute 'town' is missing or empty", route_id=route_id, element="<route>", at=route
        )
    has_v1 = route.find("waypoint") is not None
    container = _single(doc, route, "waypoints", route_id)
    if has_v1 and container is not None:
        raise doc.error(
            "route has both <waypoint> children (Leaderboard 1.0) and a <waypoints> element "
            "(Leaderboard 2.0)",
            route_id=route_id,
            element="<route>",
            at=route,
        )
    try:
        if container is not None:
            return _parse_route_v2(doc, route, container, route_id, town)
        if has_v1:
            return _parse_route_v1(doc, route, route_id, town)
    except RouteFileError:
        raise
    except (TypeError, ValueError) as err:  # a value the route data classes refuse
        raise doc.error(str(err), route_id=route_id, element="<route>", at=route) from err
    raise doc.error(
        "route has no waypoints (neither <waypoint> children, Leaderboard 1.0, nor a <waypoints> "
        "element, Leaderboard 2.0); at least 2 are required",
        route_id=route_id,
        element="<route>",
        at=route,
    )


def _parse(data: str | bytes, source: Path | None) -> list[RouteSpec]:
    doc = _Document(data, source)
    if doc.root.tag != "routes":
        raise doc.error(
            f"the root element is <{doc.root.tag}>, expected <routes>",
            element=f"<{doc.root.tag}>",
            at=doc.root,
        )
    routes: list[RouteSpec] = []
    first_seen: dict[str, int | None] = {}
    for index, elem in enumerate(doc.root.findall("route")):
        route = _parse_route(doc, elem, index)
        if route.route_id in first_seen:
            line = first_seen[route.route_id]
            raise doc.error(
                "duplicate route id" + (f" (first used on line {line})" if line else ""),
                route_id=route.route_id,
                element="<route>",
                at=elem,
            )
        first_seen[route.route_id] = doc.line(elem)
        routes.append(route)
    return routes


def parse_routes(text: str, source: Path | None = None) -> list[RouteSpec]:
    """Parse route file text (either format, detected per route), in file order.

    Args:
        text: the XML text of a route file.
        source: the file the text came from, used in error messages and stored on the routes.

    Raises:
        RouteFileError: malformed XML, a DOCTYPE or entity declaration, or invalid routes.
    """
    return _parse(text, Path(source) if source is not None else None)


def _available_ids(routes: Sequence[RouteSpec]) -> str:
    ids = [r.route_id for r in routes]
    shown = ", ".join(repr(i) for i in ids[:_MAX_IDS_LISTED])
    if len(ids) > _MAX_IDS_LISTED:
        shown += f", ... ({len(ids)} routes in all)"
    return shown or "none (the file has no routes)"


def load_routes(
    path: Path | str, *, town: str | None = None, route_ids: Iterable[str] | None = None
) -> list[RouteSpec]:
    """Load the routes of a route file (either format, detected per route), in file order.

    The whole file is validated, whatever the filters select.

    Args:
        path: the route XML file.
        town: keep only the routes in this town (e.g. ``"Town01"``); it must occur in the file.
        route_ids: keep only the routes with these ids; every id must occur in the file. With
            ``town`` too, the routes must match both.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        RouteFileError: the file is invalid, or ``town``/``route_ids`` are not in it.
        TypeError: ``route_ids`` is a single string or holds non-strings.
    """
    source = Path(path)
    routes = _parse(source.read_bytes(), source)
    if town is not None:
        towns = sorted({r.town for r in routes})
        if town not in towns:
            raise RouteFileError(
                f"no route in town {town!r}; towns in the file: {', '.join(towns) or 'none'}",
                source=source,
            )
    keep: set[str] | None = None
    if route_ids is not None:
        if isinstance(route_ids, str):
            raise TypeError(
                f"route_ids must be a collection of ids, not the string {route_ids!r}; "
                "use load_route() for one route"
            )
        wanted = list(route_ids)
        for rid in wanted:
            if not isinstance(rid, str):
                raise TypeError(f"route ids are strings, got {type(rid).__name__} {rid!r}")
        present = {r.route_id for r in routes}
        missing = [rid for rid in wanted if rid not in present]
        if missing:
            raise RouteFileError(
                f"route id(s) {', '.join(repr(m) for m in missing)} not in the file; "
                f"available: {_available_ids(routes)}",
                source=source,
            )
        keep = set(wanted)
    return [
        r
        for r in routes
        if (town is None or r.town == town) and (keep is None or r.route_id in keep)
    ]


def load_route(path: Path | str, route_id: str) -> RouteSpec:
    """Load the route with id ``route_id`` from a route file (either format).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        RouteFileError: the file is invalid, or has no route ``route_id`` (the message lists
            some of the ids it has).
    """
    if not isinstance(route_id, str):
        raise TypeError(f"route_id is a string, got {type(route_id).__name__} {route_id!r}")
    source = Path(path)
    routes = _parse(source.read_bytes(), source)
    for route in routes:
        if route.route_id == route_id:
            return route
    raise RouteFileError(
        f"no such route in the file; available ids: {_available_ids(routes)}",
        source=source,
        route_id=route_id,
    )


# --------------------------------------------------------------------------- writing


def _fmt(value: float) -> str:
    """A number as CARLA's parsers read it: integral values without a fraction (``"9"``)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _location_attrs(location: FloatArray) -> dict[str, str]:
    carla = kaido_points_to_carla(location[: len(PointIndex)])
    attrs = {"x": _fmt(carla[0]), "y": _fmt(carla[1]), "z": _fmt(carla[2])}
    if location.shape[0] > RoutePoseIndex.YAW:
        attrs["yaw"] = _fmt(_kaido_yaw_to_carla(float(location[RoutePoseIndex.YAW])))
    return attrs


def _weather_attrs(weather: Weather) -> dict[str, str]:
    attrs = {}
    if weather.route_percentage is not None:
        attrs["route_percentage"] = _fmt(weather.route_percentage)
    attrs.update({k: _fmt(v) for k, v in weather.parameters.items()})
    return attrs


def _check_writable(route: RouteSpec, fmt: RouteFormat) -> None:
    what = f"route {route.route_id!r} cannot be written in Leaderboard {fmt.value} format"
    if fmt is RouteFormat.LEADERBOARD_1:
        if route.scenarios:
            raise ValueError(
                f"{what}: it has {len(route.scenarios)} scenarios, which 1.0 "
                "route files cannot hold"
            )
        if len(route.weathers) > 1:
            raise ValueError(
                f"{what}: it has {len(route.weathers)} weather keyframes, 1.0 "
                "allows one weather per route"
            )
        if route.weathers and route.weathers[0].route_percentage is not None:
            raise ValueError(
                f"{what}: its weather has a route_percentage, which 1.0 does not "
                "support; replace it with Weather(None, parameters)"
            )
    else:
        if route.yaws is not None:
            raise ValueError(
                f"{what}: it has waypoint yaws, which 2.0 <position> elements "
                "cannot hold; drop them with dataclasses.replace(route, "
                "yaws=None)"
            )
        for weather in route.weathers:
            if weather.route_percentage is None:
                raise ValueError(f"{what}: 2.0 weathers need a route_percentage")


def format_routes(routes: Iterable[RouteSpec], format: RouteFormat) -> str:
    """The text of a route file holding ``routes`` in the given Leaderboard ``format``.

    Converts from kaido's frame back to CARLA's. Conversions that would lose information
    (scenarios or weather keyframes into 1.0, waypoint yaws into 2.0) are refused.

    Raises:
        ValueError: duplicate route ids, or a route the format cannot represent.
    """
    if not isinstance(format, RouteFormat):
        raise TypeError(f"format must be a RouteFormat, got {format!r}")
    root = ET.Element("routes")
    seen: set[str] = set()
    for route in routes:
        if route.route_id in seen:
            raise ValueError(f"duplicate route id {route.route_id!r}")
        seen.add(route.route_id)
        _check_writable(route, format)
        elem = ET.SubElement(root, "route", {"id": route.route_id, "town": route.town})
        points = kaido_points_to_carla(route.waypoints)
        if format is RouteFormat.LEADERBOARD_1:
            if route.weathers:
                ET.SubElement(elem, "weather", _weather_attrs(route.weathers[0]))
            for i, (x, y, z) in enumerate(points):
                attrs = {"x": _fmt(x), "y": _fmt(y), "z": _fmt(z)}
                if route.yaws is not None:
                    attrs.update(
                        pitch="0", roll="0", yaw=_fmt(_kaido_yaw_to_carla(float(route.yaws[i])))
                    )
                ET.SubElement(elem, "waypoint", attrs)
            continue
        if route.weathers:
            weathers = ET.SubElement(elem, "weathers")
            for weather in route.weathers:
                ET.SubElement(weathers, "weather", _weather_attrs(weather))
        waypoints = ET.SubElement(elem, "waypoints")
        for x, y, z in points:
            ET.SubElement(waypoints, "position", {"x": _fmt(x), "y": _fmt(y), "z": _fmt(z)})
        if route.scenarios:
            scenarios = ET.SubElement(elem, "scenarios")
            for scenario in route.scenarios:
                s = ET.SubElement(
                    scenarios, "scenario", {"name": scenario.name, "type": scenario.type}
                )
                ET.SubElement(s, _TRIGGER_TAG, _location_attrs(scenario.trigger))
                for key, value in scenario.parameters.items():
                    if isinstance(value, np.ndarray):
                        attrs = _location_attrs(value)
                    elif isinstance(value, Mapping):
                        attrs = {k: v if isinstance(v, str) else _fmt(v) for k, v in value.items()}
                    else:
                        attrs = {"value": value if isinstance(value, str) else _fmt(value)}
                    ET.SubElement(s, key, attrs)
    ET.indent(root, space="   ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_routes(routes: Iterable[RouteSpec], path: Path | str, format: RouteFormat) -> None:
    """Write ``routes`` to ``path`` as a Leaderboard route file in ``format`` (see
    :func:`format_routes`); the file is only written once the whole text is ready."""
    text = format_routes(routes, format)
    Path(path).write_text(text, encoding="utf-8")
