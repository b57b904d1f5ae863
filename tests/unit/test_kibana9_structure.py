"""The Kibana saved objects (rtcrypto/search/kibana/trade_review.ndjson) against what Kibana 9 expects.

Kibana itself cannot run on these machines (it is on no package registry they reach), so this is a
structural check, not a render: nothing here proves that a Kibana draws these charts. It checks
what Kibana 9's saved-object import checks or relies on, read from Kibana's source (elastic/kibana,
the files and commits named below):

- migration versions: each object's ``typeMigrationVersion`` is what Kibana 9.0 writes for its
  type, so a 9.x import neither refuses it as newer nor runs the 8.0.0 multi-namespace
  conversion on it (which gives objects imported into a non-default space new ids), and
  ``coreMigrationVersion`` is the latest core migration;
- attributes: only those the type's create schema allows (the schemas forbid unknown keys);
- references: every reference resolves; search sources and dashboard panels name theirs;
- data views: every index of a ``title`` has an index template in ``INDEX_SPECS``;
- embedded JSON (``visState``, ``panelsJSON``, ``searchSourceJSON``) parses, panels fit the grid.

How Kibana reads the versions (core saved-objects migration code):
- src/core/packages/saved-objects/migration-server-internal/src/document_migrator/
  build_active_migrations.ts (afd8e60753a8) and document_migrator.ts (1d91b9aac055): a type's
  version is the highest of its ``migrations``, its ``modelVersions`` and its
  ``convertToMultiNamespaceTypeVersion``;
- .../document_migrator/pipelines/upgrade_pipeline.ts (a2dd30430619): a document whose
  ``typeMigrationVersion`` is above that is refused ("belongs to a more recent version of
  Kibana"); below it, the missing migrations run, the namespace conversion included;
- .../document_migrator/pipelines/utils.ts (a2dd30430619): ``coreMigrationVersion`` must be
  semver and not above the running Kibana;
- .../document_migrator/migrations/index.ts (82ab9ad284d3): the only core migration is 8.8.0;
- .../document_migrator/internal_transforms.ts (437def57ef40): the conversion regenerates the id
  of an object outside the default space;
- src/core/packages/saved-objects/base-server-internal/src/model_version/constants.ts
  (9e98c9d426b3): model version N is the virtual version ``10.N.0``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from typing import Any

import pytest

from rtcrypto.search.indices import INDEX_SPECS
from rtcrypto.search.kibana import SAVED_OBJECTS_FILE, saved_objects

CORE_MIGRATION_VERSION = "8.8.0"  # the latest core migration (migrations/index.ts above)
MULTI_NAMESPACE_CONVERSION = "8.0.0"  # convertToMultiNamespaceTypeVersion of all four types
KIBANA_9_TYPE_VERSIONS = {
    # src/platform/plugins/shared/data_views/server/saved_objects/data_views.ts (b4099342f24d)
    # and index_pattern_migrations.ts (b9c5cc397a61): migrations up to 7.11.0, no model
    # versions, converted to multi-namespace at 8.0.0.
    "index-pattern": "8.0.0",
    # src/platform/plugins/shared/visualizations/server/saved_objects/visualization.ts
    # (91016ea148ed) and ../migrations/visualization_saved_object_migrations.ts (328b3b5eaa3d):
    # migrations up to 8.5.0, no model versions; the search-source migrations merged into them
    # are empty (data/common/search/search_source/search_source_service.ts 1ea12ce3372,
    # data/common/query/filters/persistable_state.ts 363cc85d46ac).
    "visualization": "8.5.0",
    # src/platform/plugins/shared/saved_search/server/saved_objects/search.ts (9b250a830556):
    # legacy migrations up to 7.9.3, model versions 1-5, none changing data. Model version 6
    # (schema_legacy.ts 4e18e4852fd6) moves a search into Discover tabs, a later 9.x feature.
    "search": "10.5.0",
    # src/platform/plugins/shared/dashboard/server/dashboard_saved_object/dashboard_saved_object.ts
    # (7527ca73dcd4): legacy migrations up to 7.17.3, model versions 1-2; model version 3
    # (schema/v3/v3.ts 1b722a55d94f) adds collapsible sections, a later 9.x feature.
    "dashboard": "10.2.0",
}
# The attributes each type's create schema allows (unknown keys are refused): visualization.ts
# above ('8.8.0' schema); saved_search schema_legacy.ts (model version 5); dashboard schema/v1/v1.ts
# (3c37204bef8a) and v2/v2.ts (6bd9e248b218). Data views have no attribute schema.
ALLOWED_ATTRIBUTES = {
    "visualization": {
        "title",
        "description",
        "version",
        "kibanaSavedObjectMeta",
        "uiStateJSON",
        "visState",
        "savedSearchRefName",
    },
    "search": {
        "title",
        "description",
        "columns",
        "sort",
        "grid",
        "rowHeight",
        "rowsPerPage",
        "hideChart",
        "breakdownField",
        "kibanaSavedObjectMeta",
        "isTextBasedQuery",
        "usesAdHocDataView",
        "timeRestore",
        "timeRange",
        "refreshInterval",
        "viewMode",
        "hideAggregatedPreview",
        "hits",
        "version",
        "sampleSize",
        "headerRowHeight",
        "visContext",
        "density",
    },
    "dashboard": {
        "title",
        "description",
        "kibanaSavedObjectMeta",
        "timeRestore",
        "timeFrom",
        "timeTo",
        "refreshInterval",
        "controlGroupInput",
        "panelsJSON",
        "optionsJSON",
        "hits",
        "version",
    },
    "index-pattern": {"title", "name", "timeFieldName"},  # what this file uses
}
GRID_COLUMNS = 48  # a dashboard's width in grid units
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def _version(text: str) -> tuple[int, int, int]:
    match = SEMVER.match(text)
    assert match, f"{text!r} is not a major.minor.patch version"
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return saved_objects()


@pytest.fixture(scope="module")
def by_id(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["id"]: obj for obj in objects}


def test_the_file_holds_only_types_kibana_9_knows_and_unique_ids(
    objects: list[dict[str, Any]],
) -> None:
    assert {obj["type"] for obj in objects} == set(KIBANA_9_TYPE_VERSIONS)
    assert [k for k, n in Counter((o["type"], o["id"]) for o in objects).items() if n > 1] == []


def test_every_object_carries_the_versions_kibana_9_writes_for_its_type(
    objects: list[dict[str, Any]],
) -> None:
    for obj in objects:
        assert obj.get("coreMigrationVersion") == CORE_MIGRATION_VERSION, obj["id"]
        assert obj.get("typeMigrationVersion") == KIBANA_9_TYPE_VERSIONS[obj["type"]], obj["id"]
        assert "migrationVersion" not in obj, obj["id"]  # the pre-8.8 field, replaced by both


def test_the_versions_are_importable_by_every_kibana_9_without_conversion() -> None:
    """Not above 9.0's latest (a later 9.x migrates up), not below the namespace conversion, and
    model versions spelled as Kibana's virtual versions (10.N.0)."""
    kibana_9 = _version("9.0.0")
    assert _version(CORE_MIGRATION_VERSION) <= kibana_9
    for kind, text in KIBANA_9_TYPE_VERSIONS.items():
        version = _version(text)
        assert version >= _version(MULTI_NAMESPACE_CONVERSION), kind
        assert version[0] in (8, 10), kind  # 8.x: legacy migrations; 10.N.0: model version N
        if version[0] == 10:
            assert version[1] >= 1 and version[2] == 0, kind


def test_attributes_are_those_the_create_schemas_allow(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        attributes = obj["attributes"]
        unknown = set(attributes) - ALLOWED_ATTRIBUTES[obj["type"]]
        assert unknown == set(), (obj["id"], unknown)
        assert isinstance(attributes.get("title"), str) and attributes["title"], obj["id"]
        if obj["type"] in ("visualization", "search", "dashboard"):
            assert isinstance(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"], str)


def test_line_charts_hold_what_the_skipped_visualization_migrations_would_add(
    objects: list[dict[str, Any]],
) -> None:
    """At 8.5.0 the migrations 7.12.0 (migrateVislibAreaLineBarTypes) and 8.3.0
    (preserveOldLegendSizeDefault) no longer run on import, so their fields are in the file
    (visualization_saved_object_migrations.ts, visualization_common_migrations.ts 91016ea148ed)."""
    charts = [obj for obj in objects if obj["type"] == "visualization"]
    assert charts
    for chart in charts:
        state = json.loads(chart["attributes"]["visState"])
        assert state["title"] == chart["attributes"]["title"]
        assert state["type"] == "line" and state["params"]["type"] == "line", chart["id"]
        params = state["params"]
        assert params["palette"] == {"type": "palette", "name": "kibana_palette"}, chart["id"]
        assert params["isVislibVis"] is True and params["detailedTooltip"] is True, chart["id"]
        assert params["fittingFunction"] == "linear", chart["id"]
        assert params["legendSize"] in {"auto", "small", "medium", "large", "xlarge"}, chart["id"]
        for series in params["seriesParams"]:
            assert series["circlesRadius"] == 1, chart["id"]
            assert series["data"]["id"] in {agg["id"] for agg in state["aggs"]}, chart["id"]
        for axis in params["categoryAxes"] + params["valueAxes"]:
            assert isinstance(axis["labels"]["filter"], bool), chart["id"]


def test_search_sources_parse_and_name_their_data_view(
    objects: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> None:
    for obj in objects:
        meta = obj["attributes"].get("kibanaSavedObjectMeta")
        if not meta:
            continue
        source = json.loads(meta["searchSourceJSON"])
        assert source["query"] == {"query": "", "language": "kuery"}, obj["id"]
        assert source["filter"] == [], obj["id"]
        if obj["type"] == "dashboard":
            assert "indexRefName" not in source
            continue
        (reference,) = [ref for ref in obj["references"] if ref["name"] == source["indexRefName"]]
        assert by_id[reference["id"]]["type"] == reference["type"] == "index-pattern", obj["id"]


def test_every_reference_resolves_to_an_object_of_its_type_in_the_file(
    objects: list[dict[str, Any]],
) -> None:
    known = {(obj["type"], obj["id"]) for obj in objects}
    for obj in objects:
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), obj["id"]
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in known, (obj["id"], ref)


def test_dashboard_panels_and_references_match_one_to_one(
    by_id: dict[str, dict[str, Any]],
) -> None:
    dashboard = by_id["rtc-trade-review"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    references = {ref["name"]: ref for ref in dashboard["references"]}
    used = []
    for panel in panels:
        assert panel["gridData"]["i"] == panel["panelIndex"], panel
        name = f"{panel['panelIndex']}:{panel['panelRefName']}"
        assert name in references, panel
        assert references[name]["type"] == panel["type"], panel
        assert "id" not in panel, panel  # the id lives in the reference only
        used.append(name)
    assert sorted(used) == sorted(references)  # no panel without a reference, nor the reverse
    assert len({panel["panelIndex"] for panel in panels}) == len(panels)
    options = json.loads(dashboard["attributes"]["optionsJSON"])
    assert options["useMargins"] is True and options["hidePanelTitles"] is False


def test_dashboard_panels_fit_the_grid_without_overlapping(
    by_id: dict[str, dict[str, Any]],
) -> None:
    panels = json.loads(by_id["rtc-trade-review"]["attributes"]["panelsJSON"])
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridData"]
        assert grid["x"] >= 0 and grid["y"] >= 0 and grid["w"] > 0 and grid["h"] > 0, panel
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel
        for column in range(grid["x"], grid["x"] + grid["w"]):
            for row in range(grid["y"], grid["y"] + grid["h"]):
                assert (column, row) not in cells, (panel["panelIndex"], cells[(column, row)])
                cells[(column, row)] = panel["panelIndex"]


def test_every_data_view_names_indices_that_have_an_index_template(
    objects: list[dict[str, Any]],
) -> None:
    patterns = {spec.index_pattern(): spec for spec in INDEX_SPECS.values()}
    for view in (obj for obj in objects if obj["type"] == "index-pattern"):
        for part in view["attributes"]["title"].split(","):
            index = part.strip()
            covered = [
                spec
                for pattern, spec in patterns.items()
                if fnmatch.fnmatchcase(pattern, index) or fnmatch.fnmatchcase(index, pattern)
            ]
            assert covered, f"{view['id']}: no index template for {index}"
            time_field = view["attributes"]["timeFieldName"]
            for spec in covered:
                assert spec.mappings()["properties"][time_field]["type"] == "date", spec.kind


def test_the_file_is_one_json_object_per_line() -> None:
    lines = SAVED_OBJECTS_FILE.read_text().splitlines()
    assert lines and all(line.strip() for line in lines)
    for line in lines:
        assert isinstance(json.loads(line), dict)
