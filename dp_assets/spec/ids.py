"""The patterns of a flow id and a node id: one place, which imports nothing, for the spec model
and the node types that name flows and nodes (``FlowInput``)."""

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
