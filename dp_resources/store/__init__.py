"""The flow store and its Dagster resource."""

from dp_resources.store.store import FlowInfo, FlowNotFound, FlowStore, SaveResult, VersionInfo

__all__ = ["FlowInfo", "FlowNotFound", "FlowStore", "SaveResult", "VersionInfo"]
