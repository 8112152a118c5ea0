"""PrintCam test webcams: an OctoPrint plugin that provides webcams from settings.

Not imported by PrintCam: `printer_sim.octoprint_server.OctoPrintServer`
copies this file into the ``plugins/`` folder of the OctoPrint it starts
(a single-file plugin, identifier ``printcam_webcams``), where OctoPrint 1.11
runs it with its own Python (3.10 to 3.13, hence no newer syntax).

OctoPrint's ``/api/settings`` lists under ``webcam.webcams[]`` what webcam
provider plugins return (`octoprint.plugin.WebcamProviderPlugin`); the
bundled ``classicwebcam`` plugin provides one. This one provides any number:
its setting ``webcams`` is a list of dicts in the shape of
`octoprint.schema.webcam.Webcam` (``name``, ``displayName``, ``canSnapshot``,
``snapshotDisplay``, ``flipH``, ``flipV``, ``rotate90``, ``extras``,
``compat`` with ``stream``, ``snapshot``, ``streamRatio``, ...), set through
``POST /api/settings`` as ``{"plugins": {"printcam_webcams": {"webcams":
[...]}}}``. An entry that does not validate is logged and left out.

Snapshots (``GET /downloads/camera/current?cam=NAME``) fetch the webcam's
``compat.snapshot`` URL, like the classic webcam does.

``GET /api/plugin/printcam_webcams?app_token=TOKEN`` (admin only) returns
``{"user_tokens": [...]}``: the Application Keys plugin's user tokens of the
pending request with that app token. OctoPrint's API lists pending requests
only by user token (``GET /api/plugin/appkeys``), and decides them by user
token (``POST /plugin/appkeys/decision/<user_token>``), while the client that
asked only knows its app token; a test that holds the app token uses this to
approve exactly that request.
"""

from __future__ import annotations

from typing import Any
import urllib.request

import flask  # type: ignore[import-not-found]
from octoprint.access.permissions import Permissions  # type: ignore[import-not-found]
import octoprint.plugin  # type: ignore[import-not-found]
from octoprint.schema.webcam import Webcam  # type: ignore[import-not-found]
from octoprint.webcams import (  # type: ignore[import-not-found]
    WebcamNotAbleToTakeSnapshotException,
)

__plugin_name__ = "PrintCam test webcams"
__plugin_description__ = "Webcams from settings, for PrintCam's tests"
__plugin_version__ = "1.0.0"
__plugin_license__ = "MIT"
__plugin_pythoncompat__ = ">=3.7,<4"


class PrintCamWebcamsPlugin(
    octoprint.plugin.SettingsPlugin,  # type: ignore[misc]
    octoprint.plugin.WebcamProviderPlugin,  # type: ignore[misc]
    octoprint.plugin.SimpleApiPlugin,  # type: ignore[misc]
):
    """Provide the webcams listed in the ``webcams`` setting."""

    def get_settings_defaults(self) -> dict[str, Any]:
        """Return the defaults: no webcams."""
        return {"webcams": []}

    def get_webcam_configurations(self) -> list[Any]:
        """Return a `Webcam` for each valid entry of the setting."""
        webcams = []
        for raw in self._settings.get(["webcams"]) or []:
            try:
                webcams.append(Webcam(**raw))
            except Exception:
                self._logger.exception("Invalid webcam in settings: %r", raw)
        return webcams

    def take_webcam_snapshot(self, webcamName: str) -> Any:  # noqa: N803
        """Return the JPEG at the webcam's snapshot URL, in chunks."""
        for webcam in self.get_webcam_configurations():
            if webcam.name == webcamName and webcam.canSnapshot and webcam.compat:
                url = webcam.compat.snapshot
                if url and url.startswith(("http://", "https://")):
                    with urllib.request.urlopen(  # noqa: S310
                        url, timeout=webcam.compat.snapshotTimeout
                    ) as response:
                        return iter([response.read()])
        raise WebcamNotAbleToTakeSnapshotException(webcamName)

    def on_api_get(self, request: Any) -> Any:
        """Map an Application Keys app token to its pending user tokens."""
        if not Permissions.ADMIN.can():
            flask.abort(403)
        app_token = request.values.get("app_token")
        if not app_token:
            flask.abort(400, description="app_token missing")
        info = self._plugin_manager.get_plugin_info("appkeys", require_enabled=True)
        if info is None:
            flask.abort(404, description="appkeys plugin not enabled")
        # A private method of the bundled plugin (OctoPrint 1.11): fine for a
        # test double pinned to that version.
        pending = info.implementation._get_pending_by_app_token(app_token)  # noqa: SLF001
        return flask.jsonify(user_tokens=[p.user_token for p in pending])

    def is_api_protected(self) -> bool:
        """Require a logged-in user or an API key."""
        return True


__plugin_implementation__ = PrintCamWebcamsPlugin()
