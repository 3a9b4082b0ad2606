"""The checks an example declares are what the Dagster UI's Checks tab lists for the asset: the
same GraphQL field (``assetChecksOrError``) from the live webserver, with names, descriptions
and the blocking flag."""

from __future__ import annotations

QUERY = """
query($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name description blocking } }
    }
  }
}
"""


def checks_of(platform, *path: str) -> dict[str, tuple[str, bool]]:
    data = platform.graphql(QUERY, {"path": list(path)})
    (node,) = data["assetNodes"]
    found = node["assetChecksOrError"]
    assert found["__typename"] == "AssetChecks", found
    return {check["name"]: (check["description"], check["blocking"]) for check in found["checks"]}


def test_the_checks_tab_lists_each_declared_check(platform):
    assert checks_of(platform, "data_processing_pipeline", "features") == {
        "not_null_label_speed": ("No nulls in label, speed.", False),
        "accepted_values_speed_band": ("speed_band is one of fast, slow.", False),
        "expression": ("Every row: speed >= 0", False),
    }
    raw = checks_of(platform, "data_processing_pipeline", "raw")
    assert set(raw) == {"row_count", "unique_sample_id"}
    assert raw["row_count"] == ("Row count at least 1.", False)
