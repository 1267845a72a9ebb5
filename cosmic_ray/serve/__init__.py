"""The Ray Serve application behind FastAPI: replicas, routes, access, the live path, the event store, web pages."""
