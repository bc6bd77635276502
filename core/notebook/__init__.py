"""The notebook: projects, nodes and the graph between them.

- `graph`: pure structure (cycles, ancestors, dependency order), no database;
- `staleness`: which node is stale and why, judged from plain facts (`judge`) and written
  with every change (`write_labels`);
- `canvas`: projects and nodes, and what a tab reads (snapshots, changes since a sequence);
- `edits`: node inputs, order and the current result.
"""
