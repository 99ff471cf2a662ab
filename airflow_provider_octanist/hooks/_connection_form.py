"""
The classic connection form (Airflow 2.11-3.1) of the ``octanist`` connection type, drawn from the
declarative definitions in the package's ``__init__`` that Airflow 3.2+ reads itself.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_octanist import CONNECTION_FORM_BEHAVIOUR, CONNECTION_FORM_EXTRAS


def ui_field_behaviour() -> dict[str, Any]:
    """The custom behaviour of the standard connection-form fields (a copy, the caller's to change)."""
    return {
        key: (list(v) if isinstance(v, list) else dict(v)) for key, v in CONNECTION_FORM_BEHAVIOUR.items()
    }


def form_widgets() -> dict[str, Any]:
    """The extra connection-form widgets (timeouts, retries, plain-http opt-in), for the web server."""
    from flask_babel import lazy_gettext  # type: ignore[import-not-found]
    from wtforms import BooleanField, IntegerField, StringField  # type: ignore[import-untyped]

    try:
        from flask_appbuilder.fieldwidgets import (  # type: ignore[import-not-found]
            BS3TextFieldWidget,
        )

        text: dict[str, Any] = {"widget": BS3TextFieldWidget()}
    except ImportError:
        text = {}
    widgets: dict[str, Any] = {}
    for name, spec in CONNECTION_FORM_EXTRAS.items():
        label, description = lazy_gettext(spec["label"]), spec["description"]
        if spec["type"] == "boolean":
            widgets[name] = BooleanField(label, default=spec["default"], description=description)
        elif spec["type"] == "integer":
            widgets[name] = IntegerField(label, default=spec["default"], description=description, **text)
        else:
            widgets[name] = StringField(label, default=str(spec["default"]), description=description, **text)
    return widgets
