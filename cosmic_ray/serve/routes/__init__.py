"""The API's routes, one router per resource; :data:`ROUTERS` in the order the app includes them."""

from fastapi import APIRouter

from cosmic_ray.serve.routes import accounts, alerts, anomalies, classes, health, labels, model, objects, predict

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    model.router,
    predict.router,
    classes.router,
    alerts.router,
    objects.router,
    accounts.router,
    labels.router,
    anomalies.router,
)
