"""Frame discovery through a GWDataFind server (LIGO/Virgo's data-discovery service), with the ``gwdatafind`` client."""

import math

from glitchflow_assets.core.io.cache import ListedFile
from glitchflow_assets.core.io.frames import FrameError, parse_frame_name

TIMEOUT_S = 30.0


class DatafindError(FrameError):
    """The server cannot be asked, or its answer cannot be used; the message names the server and the query."""


def find_frame_urls(server: str, observatory: str, frametype: str, gps_start: float, gps_end: float, extension: str) -> list[ListedFile]:
    """The files of ``observatory``/``frametype`` the server knows over [gps_start, gps_end), as listed files (their span
    from their T050017 names: the server answers URLs only); gaps in its holdings are not an error (a run has them)."""
    import gwdatafind  # requests and its auth stack: only for runs that use a server

    gps_start, gps_end = math.floor(gps_start), math.ceil(gps_end)  # the API takes whole seconds
    query = f"{observatory}-{frametype} over GPS [{gps_start}, {gps_end}) ({extension}) from {server}"
    try:
        urls = gwdatafind.find_urls(
            observatory, frametype, gps_start, gps_end, host=server, urltype="file", on_gaps="ignore", ext=extension, timeout=TIMEOUT_S
        )
    except Exception as exc:  # noqa: BLE001 - requests, HTTP and JSON errors: all mean no answer
        unknown = getattr(getattr(exc, "response", None), "status_code", None) in (400, 404)  # observatory, type unknown
        hint = f" (the server holds no {observatory}-{frametype} data: check frames.observatory and frames.type)" if unknown else ""
        raise DatafindError(f"GWDataFind query {query} failed{hint}: {exc.__class__.__name__}: {exc}") from exc
    listed = []
    for url in urls:
        try:
            frame = parse_frame_name(url.rsplit("/", 1)[-1])
        except ValueError as exc:
            raise DatafindError(f"GWDataFind query {query} answered {url!r}: {exc}") from None
        listed.append(ListedFile(url, frame.gps_start, frame.duration, server))
    return listed
