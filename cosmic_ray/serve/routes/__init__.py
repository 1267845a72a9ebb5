"""The API's routes, one router per resource; :data:`ROUTERS` in the order the app includes them."""

from fastapi import APIRouter

from cosmic_ray.serve.routes import (
    accounts,
    alerts,
    anomalies,
    classes,
    crossmatches,
    cutouts,
    health,
    labels,
    model,
    objects,
    predict,
    sky,
    subscriptions,
    watchlists,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    model.router,
    predict.router,
    classes.router,
    alerts.router,
    objects.router,
    sky.router,
    accounts.router,
    cutouts.router,
    crossmatches.router,
    watchlists.router,
    subscriptions.router,
    labels.router,
    anomalies.router,
)
