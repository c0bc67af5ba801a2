"""What the HTTP service takes and answers: import options, summaries, errors. Pure (pydantic models)."""
from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from worker.errors import BackfillError
from worker.sink.stored import dead_letters, import_stored


class ApiError(BackfillError):
    """An answer other than 2xx, with a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every answer other than 2xx."""

    error: ErrorDetail


#: The error answers, as the OpenAPI document lists them for every operation.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what} for status, what in (
        (400, "the body cannot be read"), (401, "no API key, an unknown or a revoked one"),
        (403, "a read key on a write"), (404, "no such import or person"), (409, "not finished, or not possible"),
        (413, "over the upload limit"), (415, "a body of a type not taken"), (422, "an option or a parameter is wrong"),
        (503, "Redis did not answer"))}


class ImportOptions(BaseModel):
    """The options of ``backfill import``, by the same names (``type`` is ``--type``)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["events", "people"] = "events"
    identifier: Literal["id", "email", "cio_id"] | None = None
    dialect: Literal["vero", "customerio"] | None = None
    data_to_process: Literal["all", "only_new", "only_existing"] = "all"
    empty_cells: Literal["ignore", "clear"] = "ignore"
    #: {column: name}: as --map COLUMN=NAME
    mapping: dict[str, str] = Field(default_factory=dict)
    skip: list[str] = Field(default_factory=list)
    trigger: bool = False
    trigger_window: str = "72h"
    timezone: str = "UTC"
    #: as --dst: the instant of a local time the zone's clocks repeat; None refuses it
    dst: Literal["earlier", "later"] | None = None
    create_people: bool = False
    dry_run: bool = False
    encoding: str | None = None
    delimiter: str | None = None
    date_formats: list[str] = Field(default_factory=list)

    def producer_args(self) -> dict[str, Any]:
        """The keyword arguments of :func:`producers.api.enqueue_import`."""
        people = {"data_to_process": self.data_to_process, "empty_cells": self.empty_cells} \
            if self.type == "people" else {}
        return dict(kind=self.type, identifier=self.identifier, dialect=self.dialect, mapping=self.mapping,
                    skip=tuple(self.skip), trigger=self.trigger, trigger_window=self.trigger_window,
                    timezone=self.timezone, dst=self.dst, create_people=self.create_people, dry_run=self.dry_run,
                    encoding=self.encoding, delimiter=self.delimiter, date_formats=tuple(self.date_formats), **people)


class JsonImport(ImportOptions):
    """An import started by JSON: of a file the service downloads (``data_file_url``, http or https; see
    producers.web.fetch), or of a staged upload (``upload_id``, ``POST /v1/uploads``): exactly one."""

    data_file_url: str | None = None
    upload_id: str | None = None


class InspectRequest(ImportOptions):
    """How a staged upload would be read under these options, with a sample of its first rows."""

    sample: int = Field(20, ge=1, le=200)


class SampleProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: Literal["error", "warning"]
    code: str
    #: the column's letter (A, B...), or None for a problem of the whole row
    column: str | None
    #: the column's header (or the property it is read as), or None
    name: str | None
    message: str


class SampleRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: the file's row number, as the errors file numbers it (the header is row 1)
    row: int
    cells: list[str]
    outcome: Literal["ok", "error", "warning"]
    problems: list[SampleProblem]


class Refusal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    #: as ``backfill inspect`` says it, with what to do
    message: str


class InspectColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str
    name: str
    role: str
    first_values: list[str]


class Inspection(BaseModel):
    """``POST /v1/uploads/{id}/inspect``: ``ok`` true with what ``backfill inspect --json`` prints and the
    sample, or ``ok`` false with the ``refusal`` (and the header's ``columns``, roles empty, when the file
    has a header: a mapping may settle the refusal)."""

    model_config = ConfigDict(extra="forbid")
    ok: bool
    refusal: Refusal | None = None
    file: str | None = None
    encoding: str | None = None
    encoding_reason: str | None = None
    delimiter: str | None = None
    dialect: str | None = None
    identifier: str | None = None
    rows: int | None = None
    blank_rows: int | None = None
    columns: list[InspectColumn] | None = None
    warnings: list[str] | None = None
    sample: list[SampleRow] | None = None


class Upload(BaseModel):
    """A staged upload."""

    upload_id: str
    name: str
    bytes: int
    #: ISO 8601, UTC: when it is deleted
    expires_at: str


class Accepted(BaseModel):
    import_id: str
    status: str
    url: str


class ImportSummary(BaseModel):
    import_id: str
    status: str
    source: str | None = None
    created_ms: int | None = None
    rows_expected: int = 0
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    errors: int = 0
    warnings: int = 0
    events_stored: int = 0
    #: everything it wrote is in the results database (false: a sink is still writing it, or none runs;
    #: null: it writes nothing there, e.g. a dry run)
    stored: bool | None = None
    #: outbox entries the results database refused, set aside as dead letters (``backfill sink --retry-dead``)
    dead_letters: int = 0
    #: events the results database did not store because another event held their dedupe key (Redis had
    #: forgotten its marks: a host crash rolled it back)
    late_duplicates: int = 0
    waiting: str = ""
    failure_code: str | None = None
    failure: str | None = None
    #: set once the import was taken back (POST .../undo)
    undone_ms: int | None = None
    #: the import that retried this one's failed rows last, and the import this one retries
    retried_by: str | None = None
    retry_of: str | None = None


class ImportPage(BaseModel):
    imports: list[ImportSummary]
    next_offset: int | None = None


class Cancelled(BaseModel):
    import_id: str
    cancelled: bool
    status: str


_INTS = ("created_ms", "rows_expected", "rows", "imported", "duplicates", "errors", "warnings", "events_stored",
         "undone_ms", "late_duplicates")


def summary(import_id: str, state: dict[str, str]) -> ImportSummary:
    """What ``GET /v1/imports/{id}`` says of an import, from its stored state. Pure."""
    return ImportSummary(import_id=import_id, status=state.get("status", "unknown"), source=state.get("source"),
                         waiting=state.get("waiting", ""), failure_code=state.get("failure_code"),
                         retried_by=state.get("retried_by"), retry_of=state.get("retry_of"),
                         failure=state.get("failure"), dead_letters=dead_letters(state),
                         stored=import_stored(state),
                         **{k: int(float(state[k])) for k in _INTS if state.get(k)})


def form_options(fields: dict[str, list[str]]) -> dict[str, Any]:
    """A multipart form's fields as import options: lists stay lists, ``mapping`` is a JSON object,
    ``map`` is repeated ``COLUMN=NAME`` (as the CLI's --map). Pure."""
    lists = {"skip", "date_formats"}
    options: dict[str, Any] = {}
    for name, values in fields.items():
        if name == "mapping":
            try:
                loaded = orjson.loads(values[-1])
            except orjson.JSONDecodeError:
                loaded = None
            if not isinstance(loaded, dict):
                raise ApiError(422, "invalid_option", "mapping must be a JSON object {column: name}")
            options.setdefault("mapping", {}).update(loaded)
        elif name == "map":
            pairs = [v.partition("=") for v in values]
            if any(not sep or not column for column, sep, _ in pairs):
                raise ApiError(422, "invalid_option", "map must be COLUMN=NAME")
            options.setdefault("mapping", {}).update({c.strip(): n.strip() for c, _, n in pairs})
        else:
            options[name] = values if name in lists else values[-1]
    return options



def first_problem(errors) -> str:
    """One sentence for a list of pydantic errors: the first, with where it is."""
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))


#: The CLI's option names in the producer's messages, and the fields the HTTP service takes for them.
_FIELDS = {"--date-format": "date_formats", "--delimiter": "delimiter", "--trigger-window": "trigger_window",
           "--timezone": "timezone", "--dst": "dst", "--encoding": "encoding", "--create-people": "create_people",
           "--map": "mapping", "--skip": "skip", "--dry-run": "dry_run", "--type": "type",
           "--trigger": "trigger"}  # (after --trigger-window: the longer name first)


def as_fields(message: str) -> str:
    """A producer's message about an option, naming the form field instead of the CLI's option. Pure."""
    for option, field in _FIELDS.items():
        message = message.replace(option, field)
    return message
