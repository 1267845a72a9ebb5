"""cosmic_ray: rare cosmic events in astronomical alert streams, on Ray.

Rooms, in pipeline order: ``core`` (settings, errors, the light-curve schema, the taxonomy),
``sources`` (one module per survey or archive), ``ingest`` (inputs -> the Parquet lake),
``learn`` (features, episodes, the ProtoNet, training, registry, evaluation), ``serve`` (the Ray
Serve application, live path, event store, web pages) and ``ops`` (CLI, cluster, deploy, jobs).
Nothing is imported here: importing the package has no side effects."""
