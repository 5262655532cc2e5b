"""The one query engine [QR-1], [QR-5]: a DICOM identifier becomes Django ``Q`` objects.

One function per matching type of PS3.4 C.2.2.2, each citing its section; :func:`key_q`
picks the right one for a key from its VR and value. Keys are described once, per level, in
:data:`KEYS` (column, VR, unique or not), for the Patient Root and Study Root information
models (PS3.4 C.6.1 and C.6.2) and the hierarchical rules of C.4.1.3.1.1.

C-FIND (``studies.query``), C-MOVE / C-GET (:func:`select_instances`) and the console search
(``studies.selectors``) call these functions; QIDO-RS is to do the same. Everything matched is
an indexed column: no query opens a file.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from studies.models import (
    Instance,
    Patient,
    Series,
    SeriesRequestAttributes,
    Study,
    StudyProcedureCode,
)


class InvalidIdentifier(Exception):
    """The identifier cannot be matched: no or unknown Query/Retrieve Level, a missing
    unique key, a value that its VR does not allow. C-FIND and C-MOVE answer 0xA900
    (Identifier does not match SOP Class)."""


class Level(enum.StrEnum):
    """Query/Retrieve Level (0008,0052), PS3.4 C.4.1.2.1."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


class QueryModel(enum.StrEnum):
    """The information models served: Patient Root (C.6.1) and Study Root (C.6.2)."""

    PATIENT = "patient"
    STUDY = "study"


# The levels of each model, top first (PS3.4 C.6.1.1 and C.6.2.1).
MODEL_LEVELS: dict[QueryModel, tuple[Level, ...]] = {
    QueryModel.PATIENT: (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE),
    QueryModel.STUDY: (Level.STUDY, Level.SERIES, Level.IMAGE),
}
_ORDER = (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE)

# The index model of each level.
LEVEL_MODELS = {
    Level.PATIENT: Patient,
    Level.STUDY: Study,
    Level.SERIES: Series,
    Level.IMAGE: Instance,
}

# ORM path from the model of a query level to the model of a level at or above it.
_PATHS: dict[tuple[Level, Level], str] = {
    (Level.PATIENT, Level.PATIENT): "",
    (Level.STUDY, Level.STUDY): "",
    (Level.STUDY, Level.PATIENT): "patient__",
    (Level.SERIES, Level.SERIES): "",
    (Level.SERIES, Level.STUDY): "study__",
    (Level.SERIES, Level.PATIENT): "study__patient__",
    (Level.IMAGE, Level.IMAGE): "",
    (Level.IMAGE, Level.SERIES): "series__",
    (Level.IMAGE, Level.STUDY): "series__study__",
    (Level.IMAGE, Level.PATIENT): "series__study__patient__",
}


def path_to(query_level: Level, key_level: Level) -> str:
    """The ORM prefix that reaches ``key_level``'s model from ``query_level``'s."""
    return _PATHS[(query_level, key_level)]


@dataclass(frozen=True)
class Key:
    """A matching / return key of one level.

    ``column`` is the field of the level's model that is returned; ``match_column`` the one
    matched (the case-folded copy for patient names); ``computed`` keys have no column of
    their own (counts, ModalitiesInStudy matching, SOPClassesInStudy) and are handled by name.
    """

    keyword: str
    level: Level
    vr: str
    column: str | None = None
    match_column: str | None = None
    unique: bool = False
    computed: bool = False

    @property
    def matched_on(self) -> str | None:
        return self.match_column or self.column


_KEY_LIST = (
    # PATIENT level, PS3.4 C.6.1.1.2 (Patient Root) / patient keys at C.6.2.1.2 (Study Root)
    Key("PatientName", Level.PATIENT, "PN", "patient_name", "patient_name_search"),
    Key("PatientID", Level.PATIENT, "LO", "patient_id", unique=True),
    Key("IssuerOfPatientID", Level.PATIENT, "LO", "issuer_of_patient_id"),
    Key("PatientBirthDate", Level.PATIENT, "DA", "patient_birth_date"),
    Key("PatientSex", Level.PATIENT, "CS", "patient_sex"),
    Key("NumberOfPatientRelatedStudies", Level.PATIENT, "IS", "number_of_studies", computed=True),
    Key("NumberOfPatientRelatedSeries", Level.PATIENT, "IS", computed=True),
    Key("NumberOfPatientRelatedInstances", Level.PATIENT, "IS", computed=True),
    # STUDY level, PS3.4 C.6.1.1.3 / C.6.2.1.2
    Key("StudyInstanceUID", Level.STUDY, "UI", "study_instance_uid", unique=True),
    Key("StudyDate", Level.STUDY, "DA", "study_date"),
    Key("StudyTime", Level.STUDY, "TM", "study_time"),
    Key("AccessionNumber", Level.STUDY, "SH", "accession_number"),
    Key("StudyID", Level.STUDY, "SH", "study_id"),
    Key("StudyDescription", Level.STUDY, "LO", "study_description"),
    Key("ReferringPhysicianName", Level.STUDY, "PN", "referring_physician_name"),
    Key("ModalitiesInStudy", Level.STUDY, "CS", "modalities_in_study", computed=True),
    Key("SOPClassesInStudy", Level.STUDY, "UI", computed=True),
    Key("NumberOfStudyRelatedSeries", Level.STUDY, "IS", "number_of_series", computed=True),
    Key("NumberOfStudyRelatedInstances", Level.STUDY, "IS", "number_of_instances", computed=True),
    # SERIES level, PS3.4 C.6.1.1.4 / C.6.2.1.3
    Key("SeriesInstanceUID", Level.SERIES, "UI", "series_instance_uid", unique=True),
    Key("Modality", Level.SERIES, "CS", "modality"),
    Key("SeriesNumber", Level.SERIES, "IS", "series_number"),
    Key("SeriesDescription", Level.SERIES, "LO", "series_description"),
    Key("BodyPartExamined", Level.SERIES, "CS", "body_part_examined"),
    Key("SeriesDate", Level.SERIES, "DA", "series_date"),
    Key("SeriesTime", Level.SERIES, "TM", "series_time"),
    Key(
        "NumberOfSeriesRelatedInstances",
        Level.SERIES,
        "IS",
        "number_of_instances",
        computed=True,
    ),
    # IMAGE level, PS3.4 C.6.1.1.5 / C.6.2.1.4
    Key("SOPInstanceUID", Level.IMAGE, "UI", "sop_instance_uid", unique=True),
    Key("SOPClassUID", Level.IMAGE, "UI", "sop_class_uid"),
    Key("InstanceNumber", Level.IMAGE, "IS", "instance_number"),
    Key("NumberOfFrames", Level.IMAGE, "IS", "number_of_frames"),
    Key("Rows", Level.IMAGE, "US", "rows"),
    Key("Columns", Level.IMAGE, "US", "columns"),
)
KEYS: dict[str, Key] = {key.keyword: key for key in _KEY_LIST}


@dataclass(frozen=True)
class SequenceKey:
    """A sequence key (PS3.4 C.2.2.2.6) whose items are indexed as rows of ``model`` (one
    per item, linked to the level's row by ``owner``); ``items`` are the item attributes
    kept, as keys on the item model's columns."""

    keyword: str
    level: Level
    model: type
    owner: str
    items: tuple[Key, ...]

    def item_key(self, keyword: str) -> Key | None:
        return next((key for key in self.items if key.keyword == keyword), None)


def _item_keys(level: Level, *columns: tuple[str, str, str]) -> tuple[Key, ...]:
    return tuple(Key(keyword, level, vr, column) for keyword, vr, column in columns)


# The sequence keys matched (optional keys, beyond the required ones of PS3.4 C.6.2.1): the
# procedure codes of a study, and the order a series was acquired for (Requested Procedure
# ID, Scheduled Procedure Step ID, Accession Number), which RIS-driven queries use.
SEQUENCE_KEYS: dict[str, SequenceKey] = {
    "ProcedureCodeSequence": SequenceKey(
        "ProcedureCodeSequence",
        Level.STUDY,
        StudyProcedureCode,
        "study",
        _item_keys(
            Level.STUDY,
            ("CodeValue", "SH", "code_value"),
            ("CodingSchemeDesignator", "SH", "coding_scheme_designator"),
            ("CodingSchemeVersion", "SH", "coding_scheme_version"),
            ("CodeMeaning", "LO", "code_meaning"),
        ),
    ),
    "RequestAttributesSequence": SequenceKey(
        "RequestAttributesSequence",
        Level.SERIES,
        SeriesRequestAttributes,
        "series",
        _item_keys(
            Level.SERIES,
            ("RequestedProcedureID", "SH", "requested_procedure_id"),
            ("ScheduledProcedureStepID", "SH", "scheduled_procedure_step_id"),
            ("AccessionNumber", "SH", "accession_number"),
            ("RequestedProcedureDescription", "LO", "requested_procedure_description"),
            ("ScheduledProcedureStepDescription", "LO", "scheduled_procedure_step_description"),
        ),
    ),
}
UNIQUE_KEYS: dict[Level, Key] = {key.level: key for key in _KEY_LIST if key.unique}

# Value Representations in which `*` and `?` are wildcards (PS3.4 C.2.2.2.4).
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
RANGE_VRS = frozenset({"DA", "TM", "DT"})
INTEGER_VRS = frozenset({"IS", "US", "UL", "SS", "SL"})

# Regex metacharacters common to Python's ``re`` (SQLite REGEXP in Django) and PostgreSQL's
# ARE; each is escaped with a backslash, which both read as a literal.
_REGEX_SPECIAL = set("\\.^$|?*+()[]{}")


# --- The matching types of PS3.4 C.2.2.2 ---------------------------------------------------


def universal_q() -> Q:
    """Universal matching, PS3.4 C.2.2.2.3: a zero-length value matches every entity (the key
    is a return key only)."""
    return Q()


def single_value_q(column: str, value: object, *, case_insensitive: bool = False) -> Q:
    """Single value matching, PS3.4 C.2.2.2.1: the value equals the stored one exactly.
    ``case_insensitive`` serves PN (C.2.2.2.1 lets an SCP match person names regardless of
    case; we do, and say so in the conformance statement) on columns without a folded copy."""
    lookup = "iexact" if case_insensitive else "exact"
    return Q(**{f"{column}__{lookup}": value})


def uid_list_q(column: str, uids: Iterable[str]) -> Q:
    """List of UID matching, PS3.4 C.2.2.2.2: the stored UID is any one of the listed UIDs
    (a backslash-separated value). One UID is the single value case."""
    values = sorted({uid.strip().rstrip("\x00") for uid in uids if uid and uid.strip()})
    if not values:
        return universal_q()
    if len(values) == 1:
        return Q(**{column: values[0]})
    return Q(**{f"{column}__in": values})


def _regex_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in _REGEX_SPECIAL else char for char in text)


def wildcard_q(column: str, pattern: str, *, case_insensitive: bool = False) -> Q:
    """Wild card matching, PS3.4 C.2.2.2.4: ``*`` matches any run of characters (also none),
    ``?`` exactly one; the whole stored value must match the pattern.

    A pattern of only ``*`` is universal matching. Patterns whose only wildcards are a
    leading and/or trailing ``*`` become ``startswith`` / ``endswith`` / ``contains``
    lookups, which PostgreSQL serves from an index (``varchar_pattern_ops`` for prefixes,
    trigram for contains); any other becomes an anchored regular expression. For PN, pass a
    case-folded pattern and a case-folded column (case-insensitive for every script, on
    SQLite and PostgreSQL alike), or ``case_insensitive`` for columns without a folded copy.
    """
    if not pattern.strip("*"):
        return universal_q()
    prefix = "i" if case_insensitive else ""
    leading = pattern.startswith("*")
    trailing = pattern.endswith("*")
    core = pattern.strip("*")
    if "*" not in core and "?" not in core:
        if leading and trailing:
            lookup = "contains"
        elif leading:
            lookup = "endswith"
        elif trailing:
            lookup = "startswith"
        else:
            lookup = "exact"
        return Q(**{f"{column}__{prefix}{lookup}": core})
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else _regex_escape(char) for char in pattern
    )
    return Q(**{f"{column}__{prefix}regex": f"^{regex}$"})


def parse_da(value: str) -> datetime.date:
    """A DA value (YYYYMMDD; the ACR-NEMA YYYY.MM.DD form too) as a date."""
    text = value.strip().replace(".", "")
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError(text)
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise InvalidIdentifier(f"not a DA value: {value!r}") from None


def _tm(value: str) -> str:
    """A TM value in the stored form (HHMMSS.FFFFFF; the ACR-NEMA colons dropped)."""
    text = value.strip().replace(":", "")
    if not text or not text.replace(".", "", 1).isdigit():
        raise InvalidIdentifier(f"not a TM value: {value!r}")
    return text


def range_q(column: str, value: str, vr: str) -> Q:
    """Range matching, PS3.4 C.2.2.2.5: ``low-high`` inclusive, ``-high`` (everything up to),
    ``low-`` (everything from). DA columns are dates; TM columns are text compared as
    strings, which orders HHMMSS.FFFFFF values correctly: every time that starts with the
    upper bound (``12`` takes 12:00 to 12:59:59.999999) is included."""
    low, _, high = value.partition("-")
    low, high = low.strip(), high.strip()
    if not low and not high:
        raise InvalidIdentifier(f"range {value!r} has no bound")
    condition = Q()
    if vr == "DA":
        if low:
            condition &= Q(**{f"{column}__gte": parse_da(low)})
        if high:
            condition &= Q(**{f"{column}__lte": parse_da(high)})
        return condition
    if vr == "TM":
        if low:
            condition &= Q(**{f"{column}__gte": _tm(low)})
        if high:
            condition &= Q(**{f"{column}__lte": _tm(high) + "~"})  # "~" sorts after digits
        return condition & ~Q(**{column: ""})
    raise InvalidIdentifier(f"range matching on VR {vr} is not supported")


# Date and time keys that together make one date-time (PS3.4 C.2.2.2.5.1).
DATE_TIME_PAIRS = {"StudyDate": "StudyTime", "SeriesDate": "SeriesTime"}


def combined_date_time_range_q(
    date_column: str, time_column: str, date_range: str, time_range: str
) -> Q:
    """Combined date-time range matching, PS3.4 C.2.2.2.5.1: a DA range and a TM range of
    one pair (StudyDate and StudyTime) are one range of date-times, from the lower date at
    the lower time to the upper date at the upper time. ``20200101-20200102`` with
    ``120000-`` takes 2020-01-01 12:00 to the end of 2020-01-02, where matching each key
    alone would take the afternoons only. An open end of either key leaves that end of the
    day open (from midnight / to the end of the day); on the bound's day an empty time does
    not match (its time is unknown)."""
    low_date, _, high_date = (part.strip() for part in date_range.partition("-"))
    low_time, _, high_time = (part.strip() for part in time_range.partition("-"))
    if not low_date and not high_date:
        raise InvalidIdentifier(f"range {date_range!r} has no bound")
    condition = Q()
    if low_date:
        day = parse_da(low_date)
        after = Q(**{f"{date_column}__gt": day})
        on_the_day = Q(**{date_column: day})
        if low_time:
            on_the_day &= Q(**{f"{time_column}__gte": _tm(low_time)})
        condition &= after | on_the_day
    if high_date:
        day = parse_da(high_date)
        before = Q(**{f"{date_column}__lt": day})
        on_the_day = Q(**{date_column: day})
        if high_time:
            # "~" sorts after digits: every time that starts with the bound is included.
            on_the_day &= Q(**{f"{time_column}__lte": _tm(high_time) + "~"})
            on_the_day &= ~Q(**{time_column: ""})
        condition &= before | on_the_day
    return condition


def _combined_pairs(identifier: Dataset, keywords: set[str]) -> dict[str, str]:
    """The date keys of :data:`DATE_TIME_PAIRS` whose date and time both hold one range,
    with their time key: these are matched together (C.2.2.2.5.1)."""
    pairs = {}
    for date_keyword, time_keyword in DATE_TIME_PAIRS.items():
        if date_keyword not in keywords or time_keyword not in keywords:
            continue
        dates = element_values(identifier, date_keyword) or []
        times = element_values(identifier, time_keyword) or []
        if len(dates) == 1 and len(times) == 1 and "-" in dates[0] and "-" in times[0]:
            pairs[date_keyword] = time_keyword
    return pairs


def multiple_values_q(values: Iterable[str], single: Callable[[str], Q]) -> Q:
    """A key with several values (ModalitiesInStudy ``CT\\MR``, PS3.4 C.6.2.1.2 note) matches
    an entity that matches any of them."""
    condition = Q()
    for value in values:
        condition |= single(value)
    return condition


def modality_in_study_q(modality: str, column: str = "modalities_in_study") -> Q:
    """ModalitiesInStudy (backslash-separated on the study row) holds ``modality``."""
    return (
        Q(**{column: modality})
        | Q(**{f"{column}__startswith": f"{modality}\\"})
        | Q(**{f"{column}__endswith": f"\\{modality}"})
        | Q(**{f"{column}__contains": f"\\{modality}\\"})
    )


def sop_classes_in_study_q(uids: Iterable[str], study_path: str) -> Q:
    """SOPClassesInStudy matching (list of UID, C.2.2.2.2): the study holds an instance of
    any listed SOP class. ``study_path`` reaches the study from the queried model."""
    values = [uid for uid in uids if uid]
    if not values:
        return universal_q()
    return Q(
        Exists(
            Instance.objects.filter(
                series__study_id=OuterRef(f"{study_path}pk" if study_path else "pk"),
                sop_class_uid__in=values,
            )
        )
    )


def query_item(identifier: Dataset, keyword: str) -> Dataset | None:
    """The single item of a sequence key (PS3.4 C.2.2.2.6), or None for a zero-length
    sequence or item (universal matching: every item is returned)."""
    try:
        items = identifier[keyword].value
    except Exception as exc:
        raise InvalidIdentifier(f"{keyword}: unreadable sequence: {exc}") from None
    if not items:
        return None
    if len(items) > 1:
        raise InvalidIdentifier(f"{keyword}: a sequence key holds a single item")
    return items[0] if len(items[0]) else None


def sequence_item_q(key: SequenceKey, item: Dataset | None) -> Q:
    """The condition on one indexed item of ``key`` (a row of its model): every item key
    with a value matches, each with its own matching type (PS3.4 C.2.2.2.6). Item keys we
    do not index are returned empty, not matched."""
    condition = Q()
    if item is None:
        return condition
    for keyword in item.dir():
        item_key = key.item_key(keyword)
        if item_key is not None:
            condition &= key_q(item_key, element_values(item, keyword) or [])
    return condition


def sequence_q(key: SequenceKey, item: Dataset | None, prefix: str = "") -> Q:
    """Sequence matching, PS3.4 C.2.2.2.6: the entity matches when at least one of its
    items matches every item key of the query's single item; a zero-length item (or
    sequence) is universal matching. ``prefix`` reaches the key's level from the queried
    model."""
    condition = sequence_item_q(key, item)
    if not condition:
        return universal_q()
    owner = OuterRef(f"{prefix}pk" if prefix else "pk")
    return Q(Exists(key.model.objects.filter(condition, **{key.owner: owner})))


# --- From an identifier to a query ---------------------------------------------------------


def element_values(identifier: Dataset, keyword: str) -> list[str] | None:
    """The values of a key as text: None when the key is absent, [] when it is zero length
    (universal matching), one string per value otherwise."""
    if keyword not in identifier:
        return None
    try:
        value = identifier[keyword].value
    except Exception as exc:  # a value pydicom cannot convert (IS "four", ...)
        raise InvalidIdentifier(f"{keyword}: invalid value: {exc}") from None
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(item) for item in value if str(item) != ""]
    return [str(value)]


def key_q(key: Key, values: list[str], prefix: str = "") -> Q:
    """The condition of one matching key: the matching type follows from its VR and value
    (PS3.4 C.2.2.2)."""
    if not values:
        return universal_q()
    if key.keyword == "ModalitiesInStudy":
        return multiple_values_q(
            values, lambda value: modality_in_study_q(value, f"{prefix}modalities_in_study")
        )
    if key.keyword == "SOPClassesInStudy":
        return sop_classes_in_study_q(values, prefix)
    if key.computed and key.vr == "IS":
        return universal_q()  # counts are return keys only
    column = f"{prefix}{key.matched_on}"
    if key.vr == "UI":
        return uid_list_q(column, values)
    return multiple_values_q(values, lambda value: _one_value_q(key, column, value))


def _one_value_q(key: Key, column: str, value: str) -> Q:
    folded = key.match_column is not None  # the column holds a case-folded copy
    if key.vr in RANGE_VRS and "-" in value:
        return range_q(column, value, key.vr)
    if key.vr == "DA":
        return single_value_q(column, parse_da(value))
    if key.vr == "TM":
        return single_value_q(column, _tm(value))
    if key.vr in INTEGER_VRS:
        try:
            return single_value_q(column, int(value.strip()))
        except ValueError:
            raise InvalidIdentifier(f"{key.keyword}: not a number: {value!r}") from None
    text = value.strip()
    if key.vr == "PN" and folded:
        text = text.casefold()
    if not text:
        return universal_q()
    case_insensitive = key.vr == "PN" and not folded
    if key.vr in WILDCARD_VRS and ("*" in text or "?" in text):
        return wildcard_q(column, text, case_insensitive=case_insensitive)
    return single_value_q(column, text, case_insensitive=case_insensitive)


def query_level(identifier: Dataset, query_model: str) -> tuple[QueryModel, Level]:
    """The information model and the Query/Retrieve Level of an identifier (PS3.4
    C.4.1.2.1); a level the model does not have is an invalid identifier."""
    try:
        model = QueryModel(query_model)
    except ValueError:
        raise InvalidIdentifier(f"unknown information model {query_model!r}") from None
    raw = identifier.get("QueryRetrieveLevel", None)
    if raw is None or str(raw).strip() == "":
        raise InvalidIdentifier("no QueryRetrieveLevel")
    try:
        level = Level(str(raw).strip().upper())
    except ValueError:
        raise InvalidIdentifier(f"unknown QueryRetrieveLevel {str(raw)!r}") from None
    if level not in MODEL_LEVELS[model]:
        raise InvalidIdentifier(f"QueryRetrieveLevel {level} is not in the {model} root model")
    return model, level


def _levels_down_to(model: QueryModel, level: Level) -> tuple[Level, ...]:
    levels = MODEL_LEVELS[model]
    return levels[: levels.index(level) + 1]


def matching_q(
    identifier: Dataset, model: QueryModel, level: Level, *, combined_date_time: bool = False
) -> Q:
    """The conditions of a C-FIND identifier on the model of ``level``.

    Every key of the query level is matched with its matching type (PS3.4 C.2.2.2). Above
    the query level the hierarchical search (C.4.1.3.1.1) expects the unique keys
    (PatientID, StudyInstanceUID, SeriesInstanceUID), which are matched; an absent or empty
    one matches everything, as most archives accept. Other keys of upper levels that carry a
    value are matched too (an extension, as Orthanc and dcm4chee do): in the Study Root
    model the patient keys are STUDY-level keys anyway (C.6.2.1.2), and this way the same
    STUDY-level query gives the same studies through Patient Root and Study Root. Keys of
    levels below the query level are ignored (returned zero length).

    Sequence keys of :data:`SEQUENCE_KEYS` use sequence matching (C.2.2.2.6).

    ``combined_date_time`` (the peer negotiated it, PS3.4 C.5.1.1.1 / C.2.2.2.5.1): a date
    range and a time range of one pair (StudyDate + StudyTime, SeriesDate + SeriesTime) are
    matched as one date-time range; without it each key is matched alone.
    """
    condition = Q()
    levels = (Level.PATIENT, *_levels_down_to(model, level))
    keywords = {
        keyword for keyword in identifier.dir() if keyword in KEYS and KEYS[keyword].level in levels
    }
    for keyword in identifier.dir():
        sequence_key = SEQUENCE_KEYS.get(keyword)
        if sequence_key is not None and sequence_key.level in levels:
            condition &= sequence_q(
                sequence_key,
                query_item(identifier, keyword),
                path_to(level, sequence_key.level),
            )
    pairs = _combined_pairs(identifier, keywords) if combined_date_time else {}
    for date_keyword, time_keyword in pairs.items():
        date_key, time_key = KEYS[date_keyword], KEYS[time_keyword]
        prefix = path_to(level, date_key.level)
        condition &= combined_date_time_range_q(
            f"{prefix}{date_key.column}",
            f"{prefix}{time_key.column}",
            element_values(identifier, date_keyword)[0],
            element_values(identifier, time_keyword)[0],
        )
        keywords -= {date_keyword, time_keyword}
    for keyword in sorted(keywords):
        key = KEYS[keyword]
        condition &= key_q(
            key, element_values(identifier, keyword) or [], path_to(level, key.level)
        )
    return condition


def select_instances(identifier: Dataset, query_model: str) -> QuerySet[Instance]:
    """The instances a C-MOVE or C-GET identifier names (PS3.4 C.4.2.2.1 / C.4.3.2.1).

    The identifier holds QueryRetrieveLevel and the unique keys: PatientID at PATIENT level;
    StudyInstanceUID (a list of UIDs allowed) at STUDY; plus SeriesInstanceUID at SERIES;
    plus SOPInstanceUID at IMAGE. Unique keys of the levels above are required too (except
    PatientID below the PATIENT level, matched when present). The unique key of the retrieve
    level may be a list of UIDs (C.2.2.2.2). Raises :class:`InvalidIdentifier` for a missing
    or unknown level or a missing unique key."""
    model, level = query_level(identifier, query_model)
    condition = Q()
    for upper in _levels_down_to(model, level):
        key = UNIQUE_KEYS[upper]
        values = element_values(identifier, key.keyword)
        required = upper is not Level.PATIENT or level is Level.PATIENT
        if not values:
            if required:
                raise InvalidIdentifier(f"{key.keyword} is required at {level} level")
            continue
        column = f"{path_to(Level.IMAGE, upper)}{key.column}"
        condition &= uid_list_q(column, values)
    return (
        Instance.objects.filter(condition)
        .select_related("storage", "series__study")
        .order_by("series__study_id", "series_id", "instance_number", "id")
    )
