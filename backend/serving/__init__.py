"""The web layer and the process around it: routes, the service they call, gunicorn, metrics, events."""
